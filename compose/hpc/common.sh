# shellcheck shell=bash
# Shared body of the chexbench Slurm templates (compose/hpc/*.sbatch); sourced, never run.
# A job runs one stage subcommand as `make <stage> CMD=<subcommand>` would, i.e. with exactly the runner prefix the
# Makefile uses for RUNNER=local|docker|apptainer, then appends one line to $LOG_DIR/jobs.tsv. Re-running is safe: each stage skips
# work when its _SUCCESS marker exists and its manifest's inputs and parameters match (chexbench_common.rundir).
#
# Environment (set by compose/hpc/submit.sh, or by hand with sbatch --export):
#   CHEXBENCH_ROOT  repository root (default: the submit directory)
#   RUNNER          local | docker | apptainer (default apptainer)
#   MODEL RUN_ID RESULTS   where outputs go: $RESULTS/$MODEL/$RUN_ID/<stage>/
#   NUM_SHARDS      shard count of the array stages
#   LOG_DIR         where jobs.tsv lives (default $RESULTS/$MODEL/$RUN_ID/slurm-logs)
#   <STAGE>_ARGS    extra stage options, e.g. GENERATE_ARGS="--prompts MIMIC_Splits/prompts_test.parquet ..."
#   MAKE_VARS       extra make variables, e.g. "SIF_DIR=/scratch/sif MIMIC_ROOT=/data/mimic-cxr-jpg/2.0.0"

set -euo pipefail

chexbench_init() {
  cd "${CHEXBENCH_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
  RUNNER=${RUNNER:-apptainer}
  MODEL=${MODEL:?MODEL is not set}
  RUN_ID=${RUN_ID:-default}
  RESULTS=${RESULTS:-Results}
  LOG_DIR=${LOG_DIR:-$RESULTS/$MODEL/$RUN_ID/slurm-logs}
  # Progress bars would fill the log with carriage returns; HF downloads are off on compute nodes; thread pools
  # match the CPUs Slurm gave the job. APPTAINERENV_* copies reach the container through --cleanenv.
  export TQDM_DISABLE=${TQDM_DISABLE:-1} HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
  export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  local var
  for var in TQDM_DISABLE HF_HUB_DISABLE_PROGRESS_BARS TRANSFORMERS_OFFLINE OMP_NUM_THREADS; do
    export "APPTAINERENV_$var=${!var}"
  done
  mkdir -p "$LOG_DIR"
  echo "[chexbench] job ${SLURM_JOB_NAME:-?} id=${SLURM_JOB_ID:-?} array=${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-}" \
       "host=$(hostname) runner=$RUNNER model=$MODEL run_id=$RUN_ID start=$(date -Is)" >&2
}

# chexbench_stage STAGE SUBCMD MARKER_DIR [stage options...]
# MARKER_DIR is the stage folder whose _SUCCESS shows a finished earlier attempt (logged only: the stage itself
# decides, from its manifest, whether the work is still current).
chexbench_stage() {
  local stage=$1 subcmd=$2 marker=$3
  shift 3
  if [[ -f "$marker/_SUCCESS" ]]; then
    echo "[chexbench] $marker/_SUCCESS exists: $stage re-checks its inputs and skips if they are unchanged" >&2
  fi
  local args
  args=$(printf '%q ' "$@")
  args=${args//\$/\$\$}  # make would expand a lone $
  chexbench_make "$stage" "$subcmd" "$stage" CMD="$subcmd" ARGS="$args"
}

# chexbench_bench_step TARGET SHARD: one step of `make bench` (BENCH_TABLE: compose/hpc/bench.tsv) or of `make
# validate` (compose/hpc/validate.tsv) with the Makefile's arguments, every other step's target held back with -o (the
# jobs they belong to ran before this one); SHARD=auto in an array task.
chexbench_bench_step() {
  local target=$1 shard=$2 t
  local -a hold=()
  for t in $(awk -F'\t' '!/^#/ && $1 != "step" {print $2}' "${BENCH_TABLE:-compose/hpc/bench.tsv}"); do
    [[ $t == "$target" ]] || hold+=(-o "$t")
  done
  chexbench_make "$STAGE" "$target" "${hold[@]}" "$target" MODEL="$MODEL" RUN_ID="$RUN_ID" SHARD="$shard"
}

# chexbench_make STAGE LABEL [make arguments...]: make with the job's runner, recording the exit code (jobs.tsv)
chexbench_make() {
  local stage=$1 label=$2 rc=0
  shift 2
  # `make`: the Makefile's runner prefix and environment. -o setup: compute nodes never (re)install anything.
  # rc-shell.sh records each recipe line's exit status, so the stage's own exit code (3 bad input, 4 contract,
  # 5 missing resource, 6 out of memory) reaches Slurm and jobs.tsv instead of make's generic 2.
  local rc_file
  rc_file=$(mktemp)
  # A job given several tasks (--ntasks-per-node=G with --gres=gpu:G) runs the command once per task through srun:
  # each task is one DDP rank (Lightning's SLURMEnvironment, or chexbench_common.distributed for transformers, reads
  # SLURM_PROCID/LOCALID/NTASKS); only DDP-aware stages (classify, llava-report) take several tasks, any other
  # stage's extra copies meet the stage lock (exit 7).
  local -a launcher=()
  if ((${SLURM_NTASKS:-1} > 1)); then
    launcher=(srun --kill-on-bad-exit=1 --ntasks="$SLURM_NTASKS")
    echo "[chexbench] $stage $label: ${SLURM_NTASKS} tasks through srun (one DDP rank each)" >&2
  fi
  # shellcheck disable=SC2086  # MAKE_VARS is a list of VAR=value words
  CHEXBENCH_RC_FILE=$rc_file "${launcher[@]}" make --no-print-directory -o setup "$@" RUNNER="$RUNNER" \
    RESULTS="$RESULTS" SHELL="$PWD/compose/hpc/rc-shell.sh" ${MAKE_VARS:-} || rc=$?
  if ((rc != 0)) && [[ -s $rc_file ]] && (($(cat "$rc_file") != 0)); then rc=$(cat "$rc_file"); fi
  rm -f "$rc_file"
  chexbench_record "$stage" "$label" "$rc"
  return "$rc"
}

# One line per job in $LOG_DIR/jobs.tsv (time, job, array task, stage, exit code, run id, host), under flock.
chexbench_record() {
  local tsv=$LOG_DIR/jobs.tsv
  local line
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(date -Is)" "${SLURM_JOB_NAME:-}" "${SLURM_JOB_ID:-}" \
    "${SLURM_ARRAY_JOB_ID:-}" "${SLURM_ARRAY_TASK_ID:-}" "$1 $2" "$3" "$MODEL/$RUN_ID" "$(hostname)")
  # shellcheck disable=SC2094  # the header test and the append are serialised by the lock
  (
    flock -w 30 9 || true
    [[ -s "$tsv" ]] || printf 'time\tjob_name\tjob_id\tarray_job_id\ttask\tstage\texit_code\trun\thost\n' >&9
    printf '%s\n' "$line" >&9
  ) 9>>"$tsv"
  echo "[chexbench] $1 $2 exit=$3 end=$(date -Is)" >&2
}
