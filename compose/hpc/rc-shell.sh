#!/bin/bash
# SHELL for `make` inside Slurm jobs (compose/hpc/common.sh): runs each recipe line with bash, like the Makefile's own
# SHELL, and writes the first failing line's exit status to $CHEXBENCH_RC_FILE, so the job can report the stage's exit
# code (3 bad input, 4 contract, 5 missing resource, 6 out of memory, 8 a failed validation gate) instead of make's
# generic 2, also when a recipe runs a sub-make (make validate's judge), whose own line then fails with 2.
/bin/bash "$@"
rc=$?
if [[ -n ${CHEXBENCH_RC_FILE:-} ]] && ((rc != 0)) && [[ ! -s $CHEXBENCH_RC_FILE ]]; then
  echo "$rc" > "$CHEXBENCH_RC_FILE"
fi
exit "$rc"
