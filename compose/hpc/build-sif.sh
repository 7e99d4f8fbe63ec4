#!/usr/bin/env bash
# Build $SIF_DIR/chexbench-<stage>_<tag>.sif once, on a login node, from a pinned image. `make sif STAGE=...` calls it.
#
# Where the image comes from (first that applies):
#   SIF_SOURCE   any apptainer build source; "{stage}" is replaced by the stage name, e.g.
#                docker://ghcr.io/you/chexbench-{stage}:0.1.0@sha256:...   (a registry, pinned by digest)
#                docker-archive:///scratch/you/chexbench-{stage}.tar        (`docker save` output copied over)
#                docker-daemon://chexbench/{stage}:0.1.0                    (a local Docker engine)
#   images/images.lock.yml   stages.<stage>: the pushed reference (tag@sha256:digest)
#   otherwise    docker-daemon://$IMAGE_REPO/<stage>:$IMAGE_TAG when a Docker engine is running here.
# Environment: STAGE (required), SIF_DIR, IMAGE_TAG, IMAGE_REPO, SIF_SOURCE, FORCE=1 (rebuild an existing SIF),
# APPTAINER_CACHEDIR / APPTAINER_TMPDIR (put them on scratch: layers are unpacked there, several GB).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
die() { echo "build-sif.sh: $*" >&2; exit 1; }

STAGE=${STAGE:?set STAGE (generate, embed, fidelity, ..., or a variant image: align-himl, llava-report-legacy)}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
IMAGE_REPO=${IMAGE_REPO:-chexbench}
SIF_DIR=${SIF_DIR:-$HOME/.cache/chexbench/sif}
# the console script the image runs: a stage's own, or for a variant image <stage>-<variant> (declared under
# `variants:` in tools/<stage>/stage.yml, or llava-report-legacy, built from tools/llava-report/legacy/Dockerfile)
# its stage's
command_stage=$STAGE
if [[ ! -f $root/tools/$STAGE/stage.yml ]]; then
  command_stage=${STAGE%-*} variant=${STAGE##*-}
  declared() { sed -n '/^variants:/,/^[^ #]/p' "$root/tools/$command_stage/stage.yml" | grep -q "^  $variant:"; }
  [[ $STAGE != "$command_stage" && -f $root/tools/$command_stage/stage.yml ]] \
    && { declared || [[ $STAGE == llava-report-legacy && -f $root/tools/llava-report/legacy/Dockerfile ]]; } \
    || die "no tools/$STAGE/stage.yml and no declared variant '$STAGE': unknown stage or image"
fi
sif=$SIF_DIR/chexbench-${STAGE}_${IMAGE_TAG}.sif

source=${SIF_SOURCE:-}
if [[ -z $source ]]; then
  locked=$(sed -n -E "s/^  ${STAGE}: *([^ #]+).*/\1/p" "$root/images/images.lock.yml" | head -n1)
  if [[ -n $locked && $locked != null ]]; then
    source=docker://$locked
  elif command -v docker > /dev/null && docker image inspect "$IMAGE_REPO/$STAGE:$IMAGE_TAG" > /dev/null 2>&1; then
    source=docker-daemon://$IMAGE_REPO/$STAGE:$IMAGE_TAG
  else
    die "no image source for $STAGE: set SIF_SOURCE (docker://...@sha256:..., docker-archive://....tar), fill" \
        "stages.$STAGE in images/images.lock.yml, or build the image here first (make image STAGE=$STAGE)"
  fi
fi
source=${source//\{stage\}/$STAGE}
case $source in
  docker://*@sha256:* | docker-archive://* | docker-daemon://* | oci-archive://* | oras://*@sha256:*) ;;
  docker://* | oras://*) die "refusing unpinned registry source '$source': add @sha256:<digest>" ;;
esac

apptainer=$(command -v apptainer || command -v singularity || true)
[[ -n $apptainer ]] || die "neither apptainer nor singularity is on PATH (module load apptainer?)"

if [[ -f $sif && ${FORCE:-0} != 1 ]]; then
  echo "$sif exists (FORCE=1 rebuilds it)"
  exit 0
fi

# Layers are unpacked under APPTAINER_TMPDIR (default /tmp, often small) and cached under APPTAINER_CACHEDIR
# (default ~/.apptainer/cache, often quota-limited): warn when they are left there.
for var in APPTAINER_CACHEDIR APPTAINER_TMPDIR; do
  [[ -n ${!var:-} ]] || echo "build-sif.sh: warning: $var is not set; point it at scratch (docs/hpc.md)" >&2
done
[[ -z ${APPTAINER_TMPDIR:-} ]] || mkdir -p "$APPTAINER_TMPDIR"
[[ -z ${APPTAINER_CACHEDIR:-} ]] || mkdir -p "$APPTAINER_CACHEDIR"
mkdir -p "$SIF_DIR"

tmp=$sif.tmp.$$
trap 'rm -f "$tmp"' EXIT
echo "building $sif from $source"
"$apptainer" build --force "$tmp" "$source"
# Smoke test before publishing the file: the console script starts with a clean environment and no home.
"$apptainer" exec --cleanenv --no-home "$tmp" "chexbench-$command_stage" --help > /dev/null \
  || die "chexbench-$command_stage --help failed inside the new image; $sif left unchanged"
mv -f "$tmp" "$sif"
trap - EXIT
sha256sum "$sif" > "$sif.sha256"
printf '%s\n' "$source" > "$sif.source"
echo "built $sif ($(du -h "$sif" | cut -f1)); source recorded in $sif.source"
