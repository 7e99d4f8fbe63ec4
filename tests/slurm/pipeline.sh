# shellcheck shell=bash disable=SC2154  # root, work, say, fail, ... come from run_local_slurm.sh
# The chexbench part of tests/slurm/run_local_slurm.sh (sourced there; uses its work, say, fail, job_state,
# wait_jobs and SLURM_CONF). Builds tiny inputs, submits the chain with compose/hpc/submit.sh (RUNNER=local,
# 2 shards), waits, and checks the outputs, the logs, the dependency order and the idempotent re-queue.

py() { "$root/.venv/bin/python" "$@"; }

# Submit with compose/hpc/submit.sh; prints its "<job name> <job id>" lines.
submit_chain() {
  MODEL=tiny-sana GENERATOR=sana RUN_ID=$1 RESULTS=$results RUNNER=local NUM_SHARDS=2 STAGES=${2:-} \
    MAKE_VARS="CACHE_DIR=$work/cache" \
    GENERATE_ARGS="--model-path $work/models/sana --config $work/models/sana.json --prompts $inputs/prompts.parquet --device cpu" \
    EMBED_ARGS=${EMBED_ARGS_OVERRIDE:-"--images $results/tiny-sana/$1/generate/images.parquet --images-root $results/tiny-sana/$1/generate/images --prompts $inputs/prompts.parquet --real-root $inputs/real --extractor inception --extractor raddino=$work/models/raddino --device cpu --num-workers 0"} \
    FIDELITY_ARGS="--nearest-k 2 --kid-subset-size 4" \
    SBATCH_ARGS="--time=10 --cpus-per-task=1" \
    GENERATE_SBATCH="--gres=none --mem=3G" EMBED_SBATCH="--gres=none --mem=3G" \
    MERGE_SBATCH="--mem=1G" FIDELITY_SBATCH="--mem=2G" \
    bash "$root/compose/hpc/submit.sh"
}

# "JobId=... Name=... JobState=... ArrayJobId=..." lines of the finished chexbench jobs (one per array task).
jobcomp() { grep -E " Name=chexbench-" "$work/log/jobcomp.txt" 2> /dev/null || true; }
field() { sed -E "s/.* $1=([^ ]*).*/\1/"; }

run_pipeline() {
  results=$work/Results
  export CHEXBENCH_CACHE_DIR=$work/cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  mkdir -p "$work/models" "$results"

  # Inputs, made on the "login node": tiny random-weight Sana and RAD-DINO, the packaged real radiographs + prompts.
  py - "$work/models" > "$work/tiny-models.log" 2>&1 << 'EOF' || { cat "$work/tiny-models.log" >&2; fail "tiny models"; }
import sys
from chexbench_embed.tiny import build_tiny_raddino
from chexbench_generate.tiny import build_tiny_pipeline, write_tiny_config
out = sys.argv[1]
build_tiny_pipeline("sana", f"{out}/sana")
write_tiny_config("sana", f"{out}/sana.json")
build_tiny_raddino(f"{out}/raddino")
EOF
  "$root/.venv/bin/chexbench-bench" demo-inputs --results "$results" --model inputs --run-id slurm --n-drr 5 --size 64 \
    2> "$work/demo-inputs.log" || { cat "$work/demo-inputs.log" >&2; fail "chexbench-bench demo-inputs"; }
  inputs=$results/inputs/slurm/inputs
  n_real=$(py -c "import pandas as pd, sys; print(len(pd.read_parquet(sys.argv[1])))" "$inputs/prompts.parquet")
  say "inputs ready: tiny sana + raddino, $n_real real images and prompts"

  # --- the chain: generate[0-1] -> merge -> embed[0-1] -> merge -> fidelity -------------------------------------
  local submitted ids
  submitted=$(submit_chain r1) || fail "submit.sh failed"
  printf '    %s\n' "${submitted//$'\n'/$'\n'    }"
  [[ $(echo "$submitted" | awk '{print $1}' | tr '\n' ' ') == \
     "chexbench-generate chexbench-generate-merge chexbench-embed chexbench-embed-merge chexbench-fidelity " ]] \
    || fail "submit.sh submitted: $submitted"
  mapfile -t ids < <(echo "$submitted" | awk '{print $2}')
  wait_jobs 240 "${ids[@]}"
  local lines bad
  lines=$(jobcomp)
  bad=$(echo "$lines" | grep -v "JobState=COMPLETED" || true)
  [[ -z $bad ]] || { echo "$bad" >&2; tail -n 30 "$results"/tiny-sana/r1/slurm-logs/*.out >&2; fail "a job did not complete"; }
  [[ $(echo "$lines" | grep -c .) == 7 ]] || { echo "$lines" >&2; fail "expected 7 finished jobs (2+1+2+1+1)"; }
  say "chain finished: 7 jobs COMPLETED"

  # afterok really ordered them: every job started after the previous step ended
  py - "$work/log/jobcomp.txt" << 'EOF' || fail "the jobs did not run in dependency order"
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(sys.argv[1]) if " Name=chexbench-" in line]
order = ["chexbench-generate", "chexbench-generate-merge", "chexbench-embed", "chexbench-embed-merge",
         "chexbench-fidelity"]
steps = [[r for r in rows if r["Name"] == name] for name in order]
assert [len(step) for step in steps] == [2, 1, 2, 1, 1], [len(step) for step in steps]
for before, after in zip(steps, steps[1:]):
    assert max(r["EndTime"] for r in before) <= min(r["StartTime"] for r in after), (before, after)
print("dependency order ok")
EOF

  # logs: %x-%A_%a.out for the arrays, %x-%j.out for single jobs, and one jobs.tsv line per job with exit code 0
  local logs=$results/tiny-sana/r1/slurm-logs
  for f in "chexbench-generate-${ids[0]}_0" "chexbench-generate-${ids[0]}_1" "chexbench-generate-merge-${ids[1]}" \
    "chexbench-embed-${ids[2]}_0" "chexbench-embed-${ids[2]}_1" "chexbench-embed-merge-${ids[3]}" \
    "chexbench-fidelity-${ids[4]}"; do
    [[ -s $logs/$f.out ]] || fail "missing log $logs/$f.out ($(ls "$logs"))"
  done
  [[ $(awk -F'\t' 'NR > 1 && $7 == 0' "$logs/jobs.tsv" | wc -l) == 7 ]] || { cat "$logs/jobs.tsv" >&2; fail "jobs.tsv"; }
  grep -q $'\r' "$logs"/*.out && fail "progress bars (carriage returns) in the batch logs"

  # the merged outputs
  py - "$results/tiny-sana/r1" "$n_real" << 'EOF' || fail "merged outputs"
import math, sys
from pathlib import Path
import pandas as pd
from chexbench_schema import read_table
run, n_real = Path(sys.argv[1]), int(sys.argv[2])
for stage in ("generate", "embed", "fidelity"):
    assert (run / stage / "_SUCCESS").is_file(), f"{stage}/_SUCCESS missing"
images = read_table(run / "generate" / "images.parquet", "images")
assert len(images) == n_real and images["image_id"].is_unique, images
assert all((run / "generate" / "images" / p).is_file() for p in images["path"])
def shards(stage):
    """The stage's shard folders: the common layout <stage>/parts/shard-K-of-N/ (older: <stage>/shard-K-of-N/ or
    generate/parts/part-K-of-N.parquet while a stage is being moved to it)."""
    d = run / stage
    return sorted((d / "parts").glob("shard-*-of-2")) or sorted(d.glob("shard-*-of-2")) or sorted(
        (d / "parts").glob("part-*-of-2.parquet"))
assert len(shards("generate")) == 2, shards("generate")
assert len(shards("embed")) == 2, shards("embed")
assert all((p / "_SUCCESS").is_file() for p in shards("embed")), shards("embed")
for extractor, dim in (("inception", 2048), ("raddino", 32)):
    synth = read_table(run / "embed" / f"synthetic-{extractor}.parquet", "embeddings")
    real = read_table(run / "embed" / f"real-{extractor}.parquet", "embeddings")
    assert set(synth["image_id"]) == set(images["image_id"]), extractor  # both shards merged, nothing twice
    assert len(synth) == len(images) and len(real) == n_real
    assert all(len(v) == dim for v in synth["vector"])
metrics = pd.read_parquet(run / "fidelity" / "metrics.parquet")
fid = metrics[metrics["metric"] == "FID"].set_index("extractor")
assert set(fid.index) == {"inception", "raddino"}, fid
assert all(math.isfinite(v) and v >= 0 for v in fid["value"]), fid
assert set(fid["n_synth"]) == {len(images)} and set(fid["n_real"]) == {n_real}
print(f"outputs ok: {len(images)} images, embeddings merged from 2 shards, FID {fid['value'].round(2).to_dict()}")
EOF

  # --- idempotent re-queue ------------------------------------------------------------------------------------
  local stamps again
  stamps=$(stat -c '%n %Y' "$results"/tiny-sana/r1/*/_SUCCESS)
  again=$(submit_chain r1 2>&1) || fail "second submit.sh failed"
  [[ $again == *"nothing to submit"* && $again != *"chexbench-generate "* ]] || fail "re-submission queued: $again"
  rm "$results/tiny-sana/r1/fidelity/_SUCCESS"
  again=$(submit_chain r1 2> /dev/null) || fail "third submit.sh failed"
  [[ $(awk '{print $1}' <<< "$again") == chexbench-fidelity ]] || fail "after losing fidelity/_SUCCESS: $again"
  wait_jobs 120 "$(awk '{print $2}' <<< "$again")"
  [[ $(job_state "$(awk '{print $2}' <<< "$again")") == COMPLETED ]] || fail "re-queued fidelity did not complete"
  [[ -f $results/tiny-sana/r1/fidelity/_SUCCESS ]] || fail "re-queued fidelity wrote no _SUCCESS"
  [[ $(stat -c '%n %Y' "$results"/tiny-sana/r1/{embed,generate}/_SUCCESS) == "$(grep -v fidelity <<< "$stamps")" ]] \
    || fail "generate/embed were redone"
  say "re-queue is idempotent: a complete run submits nothing; a lost fidelity/_SUCCESS re-queues fidelity only"

  # --- a failing stage cancels what depends on it ---------------------------------------------------------------
  local failing
  failing=$(EMBED_ARGS_OVERRIDE="--images $work/no-such-table.parquet --images-root $work --extractor inception" \
    submit_chain r2 "embed fidelity" 2> /dev/null) || fail "submit.sh (failing chain) failed"
  mapfile -t ids < <(awk '{print $2}' <<< "$failing")
  wait_jobs 120 "${ids[@]}"
  [[ $(grep -E " ArrayJobId=${ids[0]} " "$work/log/jobcomp.txt" | field JobState | sort -u) == FAILED ]] \
    || fail "the broken embed tasks did not fail"
  [[ $(job_state "${ids[1]}") == CANCELLED && $(job_state "${ids[2]}") == CANCELLED ]] \
    || fail "dependents of the failed embed: merge $(job_state "${ids[1]}"), fidelity $(job_state "${ids[2]}")"
  # the stage's own exit code (3: bad input) reaches Slurm and jobs.tsv, not make's generic 2
  [[ $(grep -E " ArrayJobId=${ids[0]} " "$work/log/jobcomp.txt" | field ExitCode | sort -u) == 3:0 ]] \
    || fail "Slurm should record exit code 3 for the broken embed tasks"
  [[ $(awk -F'\t' 'NR > 1 {print $7}' "$results/tiny-sana/r2/slurm-logs/jobs.tsv" | sort -u) == 3 ]] \
    || fail "jobs.tsv of the failed run should record exit code 3"
  say "a failed embed array cancels its merge and fidelity (afterok + kill-on-invalid-dep)"

  # --- a classify job on the finished run (its TRAIN prompts' images are in r1's generate): two tasks, one DDP rank
  # each, started by the template's srun (what --ntasks-per-node=G --gres=gpu:G does on a GPU node) ---------------
  local classify job
  classify=$(MODEL=tiny-sana RUN_ID=r1 RESULTS=$results RUNNER=local STAGES=classify SBATCH_ARGS="--time=10 --cpus-per-task=1" \
    CLASSIFY_ARGS="--train-prompts $inputs/prompts_train.parquet --test-prompts $inputs/prompts_holdout.parquet --real-root $inputs/real --setting all_original --setting augmented --size 32 --width 4 --epochs 1 --seeds 1 --batch-size 4 --workers 0 --val-fraction 0.25 --bootstrap 20 --device cpu --devices 2 --strategy ddp" \
    MAKE_VARS="CACHE_DIR=$work/cache" CLASSIFY_SBATCH="--gres=none --mem=4G --ntasks-per-node=2" bash "$root/compose/hpc/submit.sh") \
    || fail "submit.sh (classify) failed"
  [[ $(echo "$classify" | awk '{print $1}') == chexbench-classify ]] || fail "submit.sh submitted: $classify"
  job=$(echo "$classify" | awk '{print $2}')
  wait_jobs 240 "$job"
  [[ $(job_state "$job") == COMPLETED ]] || { tail -n 30 "$results"/tiny-sana/r1/slurm-logs/chexbench-classify-*.out >&2; fail "the classify job is $(job_state "$job")"; }
  [[ -f $results/tiny-sana/r1/classify/_SUCCESS ]] || fail "the classify job wrote no _SUCCESS"
  [[ $(wc -l < "$results/tiny-sana/r1/classify/classification_metrics.csv") == 3 ]] || fail "classify: expected 2 settings"
  grep -q "2 tasks through srun" "$results"/tiny-sana/r1/slurm-logs/chexbench-classify-*.out || fail "classify did not srun 2 tasks"
  grep -q "MEMBER: 2/2" "$results"/tiny-sana/r1/slurm-logs/chexbench-classify-*.out || fail "classify: no 2-rank DDP world"
  say "classify job COMPLETED: 2 settings trained by 2 srun tasks (DDP) and tested on the run's images"

  # --- a llava-report job on the same run: a tiny LLaVA-Rad converted on the "login node", fine-tuned by two srun
  # tasks (one torch rank each, from Slurm's variables), rank 0 alone generating and scoring --------------------------
  local convert_bin=$root/.venv/bin/chexbench-llava-convert llava
  { "$convert_bin" tiny-llava-rad "$work/models/tiny-llava-rad" && "$convert_bin" convert --dtype float32 \
      --llava-rad "$work/models/tiny-llava-rad/llava-rad" --vicuna "$work/models/tiny-llava-rad/vicuna" \
      --out "$work/models/tiny-llava-hf"; } > "$work/tiny-llava.log" 2>&1 || { cat "$work/tiny-llava.log" >&2; fail "tiny llava"; }
  llava=$(MODEL=tiny-sana RUN_ID=r1 RESULTS=$results RUNNER=local STAGES=llava-report SBATCH_ARGS="--time=10 --cpus-per-task=1" \
    LLAVA_REPORT_ARGS="--model-dir $work/models/tiny-llava-hf --train-prompts $inputs/prompts_train.parquet --test-prompts $inputs/prompts_holdout.parquet --real-root $inputs/real --fraction 100 --no-zero-shot --epochs 2 --batch-size 1 --workers 0 --max-new-tokens 4 --bootstrap 20 --device cpu" \
    MAKE_VARS="CACHE_DIR=$work/cache" LLAVA_REPORT_SBATCH="--gres=none --mem=4G --ntasks-per-node=2" bash "$root/compose/hpc/submit.sh") \
    || fail "submit.sh (llava-report) failed"
  job=$(echo "$llava" | awk '{print $2}')
  wait_jobs 300 "$job"
  local log=("$results"/tiny-sana/r1/slurm-logs/chexbench-llava-report-*.out)
  [[ $(job_state "$job") == COMPLETED ]] || { tail -n 30 "${log[@]}" >&2; fail "the llava-report job is $(job_state "$job")"; }
  [[ -f $results/tiny-sana/r1/llava-report/_SUCCESS ]] || fail "the llava-report job wrote no _SUCCESS"
  grep -q "2 tasks through srun" "${log[@]}" || fail "llava-report did not srun 2 tasks"
  # two ranks of batch 1 over P pairs: ceil(P / 2) optimiser steps per epoch (one rank alone would take P)
  py -c "import json, math, sys; m = json.load(open(sys.argv[1])); p = m['counts']['pairs']
assert p > 1 and m['optimiser_steps'] == 2 * math.ceil(p / 2), m" \
    "$results/tiny-sana/r1/llava-report/finetune-p100/manifest.json" || fail "llava-report: not trained by 2 ranks"
  say "llava-report job COMPLETED: fine-tuned by 2 srun tasks (torch ranks from Slurm), generated and scored by rank 0"
}
