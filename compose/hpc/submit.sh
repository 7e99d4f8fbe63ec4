#!/usr/bin/env bash
# Submit the chexbench chain to Slurm: generate (array) -> merge -> embed (array) -> merge -> fidelity, each step
# waiting for the previous one with --dependency=afterok (a failure cancels what depends on it).
#
# Idempotent: a stage whose Results/<model>/<run_id>/<stage>/_SUCCESS exists is not submitted again as long as
# nothing upstream of it is re-run in the same submission; once a stage is submitted, everything after it is too.
# Each job still decides itself: a stage (or shard) whose outputs are complete for the same inputs and parameters
# returns at once, and generate resumes image by image. Re-running this script after a failure or a time-out
# therefore re-queues exactly what is missing.
#
# Every job runs the one template compose/hpc/stage.sbatch with STAGE (and CHEXBENCH_SUBCMD=merge for merges) in its
# environment. The resources of each stage (--cpus-per-task, --mem, --time, and --gres=gpu:1 when its gpu is optional
# or required) come from compose/hpc/stages.tsv, rendered from tools/<stage>/stage.yml (images/render.py), so this
# script needs only bash and awk on the login node. A stage declared `shards: true` runs as a job array with
# `--shard auto` followed by a merge job when NUM_SHARDS > 1; every other job is a single, unsharded job.
#
# STAGES=all submits the whole benchmark instead: one job per step of `make bench` (compose/hpc/bench.tsv: inputs,
# generate array, embed array, fidelity, align, privacy's sample -> generate array -> embed (+ the control ladder's)
# -> run, the TRAIN prompts' generate array, classify, llava-report's conversion and training, the report), each
# running that step's make target alone with the Makefile's arguments for MODEL, after the steps it needs. A step is
# skipped when its folder's _SUCCESS exists and none of the steps it waits for is submitted; a preparation step
# (inputs, llava-convert) is submitted whenever a step after it is. The <STAGE>_ARGS variables do not apply there:
# BENCH_ARGS_GENERATE, BENCH_ARGS_CLASSIFY, BENCH_ARGS_LLAVA_REPORT (in the environment) and MAKE_VARS do.
#
# STAGES=validate submits `make validate` the same way (compose/hpc/validate.tsv): the pool, the split and the models
# as preparation steps, one job per axis of VALIDATE_AXES, then the judge (judgement, report page, --strict gate) after
# them, under the fixed run id "validate" (RUN_ID does not apply). VALIDATE_AXES and the other VALIDATE_* variables
# come from MAKE_VARS (one word each) or the environment (values with spaces, e.g. VALIDATE_FIDELITY_ARGS="-n 500").
#
# Usage: MODEL=sana RUN_ID=r1 NUM_SHARDS=8 GENERATE_ARGS="..." EMBED_ARGS="..." compose/hpc/submit.sh [--dry-run]
#        MODEL=sana RUN_ID=r1 STAGES=all compose/hpc/submit.sh [--dry-run]   (or make slurm-submit MODEL=sana STAGES=all)
#        MODEL=sana STAGES=validate compose/hpc/submit.sh [--dry-run]  (make slurm-submit MODEL=sana STAGES=validate)
#   (or `make slurm-submit MODEL=...`). Environment:
#   MODEL (required: the output folder name), GENERATOR (generate's registry model, default MODEL),
#   RUN_ID (default), RESULTS (Results), RUNNER (apptainer | local | docker), NUM_SHARDS (4),
#   STAGES (default: every stage of compose/hpc/stages.tsv, in pipeline order; or a subset, in order; or all; or
#   validate),
#   LOG_DIR ($RESULTS/$MODEL/$RUN_ID/slurm-logs),
#   GENERATE_ARGS EMBED_ARGS FIDELITY_ARGS (stage options, space-separated), MAKE_VARS (make variables for the runner,
#   e.g. "SIF_DIR=/scratch/$USER/sif MIMIC_ROOT=/data/mimic-cxr-jpg/2.0.0"),
#   SBATCH_ARGS (sbatch options for every job, after the stage's resources, e.g. "--partition=gpu --account=proj"),
#   GENERATE_SBATCH EMBED_SBATCH MERGE_SBATCH FIDELITY_SBATCH (per-job sbatch options, last, e.g. "--gres=gpu:a100:1";
#   "--gres=none" runs a gpu: optional stage on CPU); with STAGES=all <STAGE>_SBATCH applies to every job of that
#   stage, then <STEP>_SBATCH to one step (e.g. TRAIN_IMAGES_SBATCH, PRIVACY_GENERATE_SBATCH), INPUTS_SBATCH to the
#   inputs job and MERGE_SBATCH to every merge.
# Prints one line per submitted job ("<job name> <job id>") and writes them to $LOG_DIR/submitted.tsv.
set -euo pipefail

# Started from `make slurm-submit`, make's own variables would reach every job's make through --export=ALL.
unset MAKEFLAGS MFLAGS MAKELEVEL
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dry_run=0
[[ ${1:-} == "--dry-run" ]] && dry_run=1

export CHEXBENCH_ROOT=$root
export MODEL=${MODEL:?set MODEL, e.g. MODEL=sana}
export RUN_ID=${RUN_ID:-default}
# make validate's sets and judgement live under <RESULTS>/<MODEL>/validate*, whatever the run id
[[ ${STAGES:-} == validate ]] && RUN_ID=validate
export RESULTS=${RESULTS:-Results}
export RUNNER=${RUNNER:-apptainer}
export NUM_SHARDS=${NUM_SHARDS:-4}
export LOG_DIR=${LOG_DIR:-$RESULTS/$MODEL/$RUN_ID/slurm-logs}
export GENERATE_ARGS=${GENERATE_ARGS:-} EMBED_ARGS=${EMBED_ARGS:-} FIDELITY_ARGS=${FIDELITY_ARGS:-}
export MAKE_VARS=${MAKE_VARS:-}
TABLE=compose/hpc/stages.tsv
BENCH_TABLE=compose/hpc/bench.tsv
# The merge job of a sharded stage and the inputs job of STAGES=all: small and CPU only.
MERGE_RESOURCES=(--cpus-per-task=2 --mem=8G --time=01:00:00)

cd "$root"
die() { echo "submit.sh: $*" >&2; exit 1; }
[[ -f $TABLE ]] || die "$TABLE is missing (python images/render.py write)"
# stage_row STAGE: "gpu shards cpus mem time" of the stage, from the table (empty when the stage is not declared)
stage_row() { awk -F'\t' -v s="$1" '$1 == s && !/^#/ {print $2, $3, $4, $5, $6}' "$TABLE"; }
declared=$(awk -F'\t' 'NR > 1 && !/^#/ && $1 != "stage" {printf "%s ", $1}' "$TABLE")
chain=$(awk -F'\t' 'NR > 1 && !/^#/ && $1 != "stage" && $7 == "true" {printf "%s ", $1}' "$TABLE")
STAGES=${STAGES:-$chain}  # default: every declared stage of the chain (column `chain`), in pipeline order
whole=0
if [[ $STAGES == all || $STAGES == validate ]]; then
  whole=1
  [[ $STAGES == validate ]] && BENCH_TABLE=compose/hpc/validate.tsv
  [[ -f $BENCH_TABLE ]] || die "$BENCH_TABLE is missing"
  STAGES=$(awk -F'\t' '!/^#/ && $1 != "step" && $3 != "-" {print $3}' "$BENCH_TABLE" | awk '!seen[$0]++' | tr '\n' ' ')
fi
[[ $NUM_SHARDS =~ ^[1-9][0-9]*$ ]] || die "NUM_SHARDS must be a positive integer, not '$NUM_SHARDS'"
case $RUNNER in local | docker | apptainer) ;; *) die "RUNNER must be local, docker or apptainer, not '$RUNNER'" ;; esac
command -v make > /dev/null || die "make is not on PATH"
((dry_run)) || command -v sbatch > /dev/null || die "sbatch is not on PATH (run this on a Slurm login node)"

# Check, before queueing anything, that the runner can start each stage: the same command line the jobs will use.
for stage in $STAGES; do
  [[ -n $(stage_row "$stage") ]] || die "unknown stage '$stage' (declared in $TABLE: ${declared% })"
  # shellcheck disable=SC2086
  cmd=$(make --no-print-directory -s -n -o setup "$stage" CMD=run RUNNER="$RUNNER" RESULTS="$RESULTS" $MAKE_VARS \
    | tail -n1) || die "make -n $stage failed"
  case $RUNNER in
    local) prog=${cmd%% *}; [[ -x $prog ]] || die "$prog is missing: run 'make setup' first" ;;
    apptainer)
      sif=$(tr ' ' '\n' <<< "$cmd" | grep -m1 '\.sif$' || true)
      [[ -f $sif ]] || die "$sif is missing: build it once on the login node with 'make sif STAGE=$stage'" ;;
    docker) command -v docker > /dev/null || die "docker is not on PATH" ;;
  esac
done
if ((whole)); then
  # Every program the chain's recipes name (make -n of the table's last target, which needs every step submitted):
  # the .venv's own tools (chexbench-bench: demo inputs, the registry's paths; chexbench-validate: the sets and the
  # judgement) run from the .venv under every runner, and under apptainer each stage command needs its image (an axis
  # of make validate runs several stages' images, not only its resources' stage's).
  last=$(awk -F'\t' '!/^#/ && $1 != "step" && NF {t = $2} END {print t}' "$BENCH_TABLE")
  # shellcheck disable=SC2086  # MAKE_VARS is a list of VAR=value words
  plan=$(make --no-print-directory -s -n -o setup "$last" MODEL="$MODEL" RUN_ID="$RUN_ID" RUNNER="$RUNNER" \
    RESULTS="$RESULTS" $MAKE_VARS) || die "make -n $last failed"
  for word in $(tr -s " \t;|&()\$\"'" '\n' <<< "$plan" | grep -E '/bin/chexbench-[a-z-]+$|\.sif$' | sort -u); do
    if [[ $word == *.sif ]]; then
      image=${word##*/chexbench-}
      [[ -f $word ]] || die "$word is missing: build it once on the login node with 'make sif STAGE=${image%_*}'"
    else
      [[ -x $word ]] || die "$word is missing: run 'make setup' on the login node first (the steps' targets use it)"
    fi
  done
fi

((dry_run)) || mkdir -p "$LOG_DIR"
log_dir_abs=$(realpath -m "$LOG_DIR")
run_dir=$RESULTS/$MODEL/$RUN_ID
fake_id=1000
dep=""
upstream_submitted=0

# submit NAME LOG_PATTERN RESOURCES -- [sbatch options...]: compose/hpc/stage.sbatch after $dep (if any); sets dep to
# the new job id. Options in order: the stage's resources, SBATCH_ARGS, then the per-job ones (the last one wins).
submit() {
  local name=$1 pattern=$2
  shift 2
  local -a opts=(--parsable --job-name="$name" --chdir="$root" --output="$log_dir_abs/$pattern")
  [[ -n $dep ]] && opts+=(--dependency="afterok:$dep" --kill-on-invalid-dep=yes)
  while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
  (($#)) && shift
  # shellcheck disable=SC2206  # SBATCH_ARGS and the per-job variables are lists of options
  opts+=(${SBATCH_ARGS:-} "$@")
  if ((dry_run)); then
    fake_id=$((fake_id + 1))
    echo "sbatch ${opts[*]} compose/hpc/stage.sbatch" >&2
    dep=$fake_id
  else
    dep=$(sbatch "${opts[@]}" compose/hpc/stage.sbatch | cut -d';' -f1)
    [[ $dep =~ ^[0-9]+$ ]] || die "sbatch did not return a job id for $name"
  fi
  echo "$name $dep"
  ((dry_run)) || printf '%s\t%s\t%s\n' "$(date -Is)" "$name" "$dep" >> "$LOG_DIR/submitted.tsv"
}

# submit_bench: the whole benchmark, one job per row of $BENCH_TABLE (see its header), waiting (afterok) for the
# nearest submitted steps its make target needs (the Makefile's prerequisites); skips the steps that are done.
submit_bench() {
  local -A target=() stage=() kind=() gpu=() after=() folder=() submit_it=() job=() step_of=()
  local -a order=()
  local step t st k g r f
  while IFS=$'\t' read -r step t st k g r f; do
    [[ $step == \#* || $step == step || -z $step ]] && continue
    order+=("$step")
    target[$step]=$t stage[$step]=$st kind[$step]=$k gpu[$step]=$g folder[$step]=$f step_of[$t]=$step
    [[ $r == - ]] && r=""
    [[ $f == - ]] || folder[$step]=$RESULTS/$MODEL/$RUN_ID$r/$f
  done < "$BENCH_TABLE"
  # what each step waits for: its target's prerequisites in the Makefile (make's database, nothing run), as steps
  local database line p d
  # shellcheck disable=SC2086  # MAKE_VARS is a list of VAR=value words
  database=$(make --no-print-directory -pnq -o setup MODEL="$MODEL" RUN_ID="$RUN_ID" RESULTS="$RESULTS" \
    RUNNER="$RUNNER" $MAKE_VARS 2> /dev/null || true)
  for step in "${order[@]}"; do
    line=$(grep -m1 "^${target[$step]}:" <<< "$database") || die "make has no target ${target[$step]} ($BENCH_TABLE)"
    after[$step]=""
    for p in ${line#*:}; do
      [[ $p == setup ]] && continue
      [[ -n ${step_of[$p]:-} ]] || die "${target[$step]} needs $p, which is no step of $BENCH_TABLE"
      after[$step]+="${step_of[$p]} "
    done
  done
  # the table's order, each step moved after the steps it waits for (a stable topological order)
  local -a sorted=()
  local -A placed=()
  local ready progress=1
  while ((${#sorted[@]} < ${#order[@]})); do
    ((progress)) || die "the steps of $BENCH_TABLE wait for each other in a circle"
    progress=0
    for step in "${order[@]}"; do
      [[ -n ${placed[$step]:-} ]] && continue
      ready=1
      for d in ${after[$step]}; do [[ -n ${placed[$d]:-} ]] || ready=0; done
      if ((ready)); then sorted+=("$step") placed[$step]=1 progress=1; fi
    done
  done
  order=("${sorted[@]}")
  # 1. the steps with outputs: submitted unless done and nothing they wait for is submitted
  local forced
  for step in "${order[@]}"; do
    [[ ${folder[$step]} == - ]] && continue
    forced=0
    for d in ${after[$step]}; do [[ -n ${submit_it[$d]:-} ]] && forced=1; done
    if ((!forced)) && [[ -f ${folder[$step]}/_SUCCESS ]]; then
      echo "skip $step: ${folder[$step]}/_SUCCESS exists" >&2
    else
      submit_it[$step]=1
    fi
  done
  # 2. a preparation step: whenever a submitted step waits for it (a rerun of a later step alone, e.g. fidelity,
  # needs none: the preparation it relied on was done by its first run)
  local i
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do
    step=${order[i]}
    [[ -n ${submit_it[$step]:-} ]] || continue
    for d in ${after[$step]}; do if [[ $d != - && ${folder[$d]} == - ]]; then submit_it[$d]=1; fi; done
  done
  # 3. submit in table order; each job waits for the nearest submitted steps before it
  local -a resources
  local deps name per_stage per_step first
  for step in "${order[@]}"; do
    [[ -n ${submit_it[$step]:-} ]] || continue
    deps=$(nearest_submitted "$step" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ':')
    dep=${deps%:}
    if [[ ${stage[$step]} == - ]]; then
      resources=("${MERGE_RESOURCES[@]}")
      per_stage=""
    else
      read -r g _ cpus mem time <<< "$(stage_row "${stage[$step]}")"
      resources=(--cpus-per-task="$cpus" --mem="$mem" --time="$time")
      [[ $g == none || ${gpu[$step]} == none ]] || resources+=(--gres=gpu:1)
      per_stage=${stage[$step]^^}_SBATCH
      per_stage=${per_stage//-/_}
    fi
    per_step=${step^^}_SBATCH
    per_step=${per_step//-/_}
    [[ $per_step == "$per_stage" ]] && per_step=""
    local -a extra=()
    # shellcheck disable=SC2206  # lists of sbatch options
    [[ -n $per_stage ]] && extra+=(${!per_stage:-})
    # shellcheck disable=SC2206
    [[ -n $per_step ]] && extra+=(${!per_step:-})
    local exports="ALL,STAGE=$step,CHEXBENCH_SUBCMD=bench,BENCH_TARGET=${target[$step]},BENCH_TABLE=$BENCH_TABLE"
    name=chexbench-$step
    if [[ ${kind[$step]} == array ]] && ((NUM_SHARDS > 1)); then  # one shard: a plain job, never an implicit shard
      submit "$name" '%x-%A_%a.out' "${resources[@]}" --array="0-$((NUM_SHARDS - 1))" --export="$exports" \
        -- "${extra[@]}"
      first=$dep
      local run=${folder[$step]%/*}
      # shellcheck disable=SC2086  # a list of sbatch options
      submit "$name-merge" '%x-%j.out' "${MERGE_RESOURCES[@]}" \
        --export="ALL,STAGE=${stage[$step]},CHEXBENCH_SUBCMD=merge,RUN_ID=${run##*/}" -- ${MERGE_SBATCH:-}
    else
      submit "$name" '%x-%j.out' "${resources[@]}" --export="$exports" -- "${extra[@]}"
      first=$dep
    fi
    job[$step]=$dep
    # steps.tsv: the step, its first and last job (an array and its merge), the jobs its first job waits for
    ((dry_run)) || printf '%s\t%s\t%s\t%s\n' "$step" "$first" "$dep" "${deps%:}" >> "$LOG_DIR/steps.tsv"
  done
  [[ ${#job[@]} -gt 0 ]] || echo "nothing to submit: every step of $run_dir has _SUCCESS" >&2
}

# nearest_submitted STEP: the job ids of the steps STEP waits for, a skipped one replaced by the steps it waits for
nearest_submitted() {
  local d
  for d in ${after[$1]}; do
    [[ $d == - ]] && continue
    if [[ -n ${job[$d]:-} ]]; then echo -n "${job[$d]} "; else nearest_submitted "$d"; fi
  done
}

if ((whole)); then
  submit_bench
  exit 0
fi

for stage in $STAGES; do
  upper=${stage^^}
  per_job_var=${upper//-/_}_SBATCH
  if ((!upstream_submitted)) && [[ -f $run_dir/$stage/_SUCCESS ]]; then
    echo "skip $stage: $run_dir/$stage/_SUCCESS exists" >&2
    continue
  fi
  read -r gpu shards cpus mem time <<< "$(stage_row "$stage")"
  resources=(--cpus-per-task="$cpus" --mem="$mem" --time="$time")
  [[ $gpu == none ]] || resources+=(--gres=gpu:1)
  if [[ $shards == true ]] && ((NUM_SHARDS > 1)); then
    # Sharded: the array over all shards (each task runs --shard auto; a finished shard returns at once), then the merge.
    # shellcheck disable=SC2086
    submit "chexbench-$stage" '%x-%A_%a.out' "${resources[@]}" --array="0-$((NUM_SHARDS - 1))" \
      --export="ALL,STAGE=$stage,CHEXBENCH_SUBCMD=run" -- ${!per_job_var:-}
    # shellcheck disable=SC2086
    submit "chexbench-$stage-merge" '%x-%j.out' "${MERGE_RESOURCES[@]}" \
      --export="ALL,STAGE=$stage,CHEXBENCH_SUBCMD=merge" -- ${MERGE_SBATCH:-}
  else
    # shellcheck disable=SC2086
    submit "chexbench-$stage" '%x-%j.out' "${resources[@]}" --export="ALL,STAGE=$stage,CHEXBENCH_SUBCMD=run" \
      -- ${!per_job_var:-}
  fi
  upstream_submitted=1
done
[[ -n $dep ]] || echo "nothing to submit: every stage of $run_dir has _SUCCESS" >&2
