#!/usr/bin/env bash
# Makes sure the report's browser test can run: Debian's chromium at $CHEXBENCH_CHROMIUM (default /usr/bin/chromium).
# Installs it with apt-get when it is missing (needs root). Exits non-zero with one line saying why when it cannot:
# the browser test fails without chromium, it never skips.
set -euo pipefail
CHROMIUM=${CHEXBENCH_CHROMIUM:-/usr/bin/chromium}
say() { echo "install_chromium: $*" >&2; }
if [[ -x $CHROMIUM ]]; then
  exit 0
fi
[[ $(id -u) == 0 ]] || { say "$CHROMIUM is missing and installing it needs root: sudo apt-get install -y --no-install-recommends chromium"; exit 1; }
command -v apt-get > /dev/null || { say "$CHROMIUM is missing and there is no apt-get to install it"; exit 1; }
say "installing Debian's chromium with apt-get (once; about 100 MB)"
export DEBIAN_FRONTEND=noninteractive
# wait for another apt-get (e.g. make slurm-test installing slurm-wlm) instead of failing on its lock
LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
timeout 900 apt-get "${LOCK_WAIT[@]}" update -q > /dev/null
timeout 1500 apt-get "${LOCK_WAIT[@]}" install -y -q --no-install-recommends chromium > /dev/null
[[ -x $CHROMIUM ]] || { say "apt-get finished but $CHROMIUM is still missing (set CHEXBENCH_CHROMIUM to its path)"; exit 1; }
say "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
