# shellcheck shell=bash
# Sourced by the real-system tests (tests/slurm/run_local_slurm.sh, tests/containers/run_podman.sh): timed progress
# lines, failure, and the loud SKIPPED exit (77) that .ci/run reports. Set TEST_NAME (e.g. slurm-test) and
# TEST_LABEL (e.g. SLURM TEST) before sourcing.
t0=$(date +%s)
say() { printf '[%s %3ds] %s\n' "$TEST_NAME" "$(($(date +%s) - t0))" "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
skip() {
  echo "=====================================================================" >&2
  echo "$TEST_LABEL SKIPPED: $*" >&2
  echo "=====================================================================" >&2
  # for .ci/run: make reports every failed recipe as exit 2, so the reason also goes to this file
  if [[ -n ${CHEXBENCH_SKIP_FILE:-} ]]; then echo "$TEST_LABEL SKIPPED: $*" > "$CHEXBENCH_SKIP_FILE"; fi
  exit 77
}
