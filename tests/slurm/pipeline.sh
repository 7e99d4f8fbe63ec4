# shellcheck shell=bash disable=SC2154  # root, work, say, fail, ... come from run_local_slurm.sh
# The chexbench part of tests/slurm/run_local_slurm.sh (sourced there; uses its work, say, fail, job_state,
# wait_jobs and SLURM_CONF). Runs the whole benchmark on the embedded default (compose/hpc/submit.sh STAGES=all,
# RUNNER=local, 2 shards) and checks every step, the order, the 2-rank jobs and the idempotent re-queue; then, on
# its tiny models and inputs, the per-stage chain (submit.sh with GENERATE_ARGS ..., RUNNER=local,
# 2 shards), waits, and checks the outputs, the logs, the dependency order and the idempotent re-queue; last, make
# validate as its own chain (submit.sh STAGES=validate).

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

# "JobId=... Name=... JobState=... ArrayJobId=..." lines of the finished chexbench jobs (one per array task), those
# with a job id from $first_job on (the per-stage chain leaves out the whole benchmark's jobs).
jobcomp() {
  awk -v first="${first_job:-0}" '/ Name=chexbench-/ {match($0, /JobId=[0-9]+/); if (substr($0, RSTART + 6, RLENGTH - 6) + 0 >= first + 0) print}' \
    "$work/log/jobcomp.txt" 2> /dev/null || true
}
field() { sed -E "s/.* $1=([^ ]*).*/\1/"; }

# --- the whole benchmark (compose/hpc/submit.sh STAGES=all) on the embedded default --------------------------------
# Every job gets one CPU and no GPU; classify and llava-report get two tasks each (two DDP ranks through srun).
submit_bench() {
  MODEL=demo RUN_ID=default RESULTS=$results RUNNER=local NUM_SHARDS=2 STAGES=all MAKE_VARS="CACHE_DIR=$work/cache" \
    SBATCH_ARGS="--time=30 --cpus-per-task=1 --mem=3G --gres=none" \
    CLASSIFY_SBATCH="--ntasks-per-node=2 --mem=4G" LLAVA_REPORT_SBATCH="--ntasks-per-node=2 --mem=5G" \
    BENCH_ARGS_CLASSIFY="--devices 2 --strategy ddp" bash "$root/compose/hpc/submit.sh"
}

run_whole_bench() {
  local submitted names ids
  submitted=$(submit_bench) || fail "submit.sh STAGES=all failed"
  printf '    %s\n' "${submitted//$'\n'/$'\n'    }"
  names=$(awk '{print $1}' <<< "$submitted" | sort | tr '\n' ' ')
  [[ $names == "chexbench-align chexbench-classify chexbench-embed chexbench-embed-merge chexbench-fidelity \
chexbench-generate chexbench-generate-merge chexbench-inputs chexbench-llava-convert chexbench-llava-report \
chexbench-privacy chexbench-privacy-control chexbench-privacy-embed chexbench-privacy-generate \
chexbench-privacy-generate-merge chexbench-privacy-sample chexbench-report chexbench-train-images \
chexbench-train-images-merge " ]] || fail "submit.sh STAGES=all submitted: $names"
  mapfile -t ids < <(awk '{print $2}' <<< "$submitted")
  wait_jobs 2400 "${ids[@]}"
  local logs=$results/demo/default/slurm-logs lines bad
  lines=$(jobcomp)
  bad=$(grep -v "JobState=COMPLETED" <<< "$lines" || true)
  [[ -z $bad ]] || { echo "$bad" >&2; tail -n 30 "$logs"/*.out >&2; fail "a job of the whole benchmark did not complete"; }
  # 19 jobs, four of them arrays of 2 tasks
  [[ $(grep -c . <<< "$lines") == 23 ]] || { echo "$lines" >&2; fail "expected 23 finished jobs and array tasks"; }
  say "whole benchmark finished: 19 jobs (23 with the array tasks) COMPLETED"

  # afterok really ordered them: each step's first job started after every job it waited for (steps.tsv) ended
  py - "$work/log/jobcomp.txt" "$logs/steps.tsv" << 'PYEOF' || fail "the jobs did not run in the benchmark's order"
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(sys.argv[1]) if " Name=chexbench-" in line]
def job(i, key):
    """StartTime (earliest) or EndTime (latest) of a job id, over its array tasks."""
    times = [r[key] for r in rows if i in (r["JobId"], r.get("ArrayJobId"))]
    assert times, i
    return min(times) if key == "StartTime" else max(times)
steps = [line.rstrip("\n").split("\t") for line in open(sys.argv[2])]
assert len(steps) == 15, steps
for step, first, last, waits in steps:
    for before in filter(None, waits.split(":")):
        assert job(before, "EndTime") <= job(first, "StartTime"), (step, before)
print("dependency order ok")
PYEOF

  # every step's folder finished, the report written, the multi-task jobs really ran as 2 ranks
  local step folder run
  while IFS=$'\t' read -r step _ _ _ _ run folder; do
    [[ $step == \#* || $step == step || $folder == - ]] && continue
    [[ $run == - ]] && run=""
    [[ -f $results/demo/default$run/$folder/_SUCCESS ]] || fail "$step: demo/default$run/$folder/_SUCCESS is missing"
  done < "$root/compose/hpc/bench.tsv"
  [[ -s $results/demo/default/report/report.html ]] || fail "the report job wrote no report.html"
  grep -q "2 tasks through srun" "$logs"/chexbench-classify-*.out || fail "classify did not srun 2 tasks"
  grep -q "MEMBER: 2/2" "$logs"/chexbench-classify-*.out || fail "classify: no 2-rank DDP world"
  grep -q "2 tasks through srun" "$logs"/chexbench-llava-report-*.out || fail "llava-report did not srun 2 tasks"
  # two ranks over P pairs: each epoch ceil(ceil(P / 2) / batch) optimiser steps (one rank alone: ceil(P / batch))
  py - "$results"/demo/default/llava-report/finetune-*/manifest.json << 'PYEOF' || fail "llava-report: not 2 ranks"
import json, math, sys
for path in sys.argv[1:]:
    m = json.load(open(path))
    p, batch, epochs = m["counts"]["pairs"], m["params"]["batch_size"], m["params"]["epochs"]
    assert m["optimiser_steps"] == epochs * math.ceil(math.ceil(p / 2) / batch) < epochs * math.ceil(p / batch), m
PYEOF
  grep -q $'\r' "$logs"/*.out && fail "progress bars (carriage returns) in the batch logs"
  [[ $(awk -F'\t' 'NR > 1 && $7 == 0' "$logs/jobs.tsv" | wc -l) == 23 ]] || { cat "$logs/jobs.tsv" >&2; fail "jobs.tsv"; }
  say "every step's _SUCCESS, the report, classify and llava-report run by 2 srun tasks"

  # idempotent: a finished benchmark submits nothing; a lost fidelity/_SUCCESS re-queues fidelity and the report only
  local again stamps
  again=$(submit_bench 2>&1) || fail "second submit.sh STAGES=all failed"
  [[ $again == *"nothing to submit"* && -z $(grep -E '^chexbench-[a-z-]+ [0-9]+$' <<< "$again") ]] \
    || fail "re-submission queued: $again"
  stamps=$(stat -c '%n %Y' "$results"/demo/default*/*/_SUCCESS | grep -v -e /fidelity/ -e /report/)
  rm "$results/demo/default/fidelity/_SUCCESS"
  again=$(submit_bench 2> /dev/null) || fail "third submit.sh STAGES=all failed"
  [[ $(awk '{print $1}' <<< "$again" | tr '\n' ' ') == "chexbench-fidelity chexbench-report " ]] \
    || fail "after losing fidelity/_SUCCESS: $again"
  mapfile -t ids < <(awk '{print $2}' <<< "$again")
  wait_jobs 600 "${ids[@]}"
  [[ $(job_state "${ids[0]}") == COMPLETED && $(job_state "${ids[1]}") == COMPLETED ]] \
    || fail "re-queued fidelity / report: $(job_state "${ids[0]}") / $(job_state "${ids[1]}")"
  [[ -f $results/demo/default/fidelity/_SUCCESS ]] || fail "the re-queued fidelity wrote no _SUCCESS"
  [[ $(stat -c '%n %Y' "$results"/demo/default*/*/_SUCCESS | grep -v -e /fidelity/ -e /report/) == "$stamps" ]] \
    || fail "steps other than fidelity and the report were redone"
  say "re-queue is idempotent: a finished benchmark submits nothing; a lost fidelity/_SUCCESS re-queues fidelity + report"
}

# --- make validate as its own chain (compose/hpc/submit.sh STAGES=validate) on the embedded default -----------------
# Two axes, so that every kind of step runs: the pool, the split, the models (alignment's stand-in BioViL-T), the
# report scorers (60 reports) and alignment side by side, then the judge with its --strict gate.
submit_validate() {
  MODEL=demo RUN_ID=ignored RESULTS=$results RUNNER=local STAGES=validate MAKE_VARS="CACHE_DIR=$work/cache" \
    VALIDATE_AXES="reports alignment" VALIDATE_REPORTS_ARGS="-n 60" \
    SBATCH_ARGS="--time=15 --cpus-per-task=1 --mem=3G --gres=none" bash "$root/compose/hpc/submit.sh"
}

run_validate_chain() {
  local submitted ids lines bad logs=$results/demo/validate/slurm-logs judged=$results/demo/validate/validate
  first_job=$(($(sbatch --parsable --job-name=marker --mem=10M --output=/dev/null --wrap true) + 1))
  submitted=$(submit_validate) || fail "submit.sh STAGES=validate failed"
  printf '    %s\n' "${submitted//$'\n'/$'\n'    }"
  [[ $(awk '{print $1}' <<< "$submitted" | tr '\n' ' ') == "chexbench-validate-pool chexbench-validate-split \
chexbench-validate-models chexbench-validate-reports chexbench-validate-alignment chexbench-validate-judge " ]] \
    || fail "submit.sh STAGES=validate submitted: $submitted"
  mapfile -t ids < <(awk '{print $2}' <<< "$submitted")
  wait_jobs 900 "${ids[@]}"
  lines=$(jobcomp)
  bad=$(grep -v "JobState=COMPLETED" <<< "$lines" || true)
  [[ -z $bad ]] || { echo "$bad" >&2; tail -n 30 "$logs"/*.out >&2; fail "a job of the validate chain did not complete"; }
  [[ $(grep -c . <<< "$lines") == 6 ]] || { echo "$lines" >&2; fail "expected 6 finished validate jobs"; }
  [[ $(awk -F'\t' 'NR > 1 && $7 == 0' "$logs/jobs.tsv" | wc -l) == 6 ]] || { cat "$logs/jobs.tsv" >&2; fail "jobs.tsv"; }

  # afterok ordered them as make validate's prerequisites say; the judge ran after both axes
  py - "$work/log/jobcomp.txt" "$logs/steps.tsv" << 'PYEOF' || fail "the validate jobs did not run in make's order"
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(sys.argv[1]) if " Name=chexbench-validate" in line]
job = {r["JobId"]: r for r in rows}
steps = {s[0]: s for s in (line.rstrip("\n").split("\t") for line in open(sys.argv[2]))}
want = {"validate-pool": set(), "validate-split": {"validate-pool"}, "validate-models": {"validate-pool"},
        "validate-reports": {"validate-split"}, "validate-alignment": {"validate-split", "validate-models"},
        "validate-judge": {"validate-reports", "validate-alignment"}}
assert set(steps) == set(want), steps
for step, before in want.items():
    waits = set(filter(None, steps[step][3].split(":")))
    assert waits == {steps[b][1] for b in before}, (step, waits)
    for b in waits:
        assert job[b]["EndTime"] <= job[steps[step][1]]["StartTime"], (step, b)
print("validate dependency order ok")
PYEOF

  # the judgement, its report page, and the gate passed (the judge job completed): the report scorers' relations pass
  [[ -f $judged/_SUCCESS && -s $judged/validation.csv ]] || fail "the judge wrote no validation.csv"
  [[ -s $results/demo/validate/report/report.html ]] || fail "the judge job wrote no report page"
  py - "$judged/validation.csv" << 'PYEOF' || fail "validation.csv"
import sys
import pandas as pd
table = pd.read_csv(sys.argv[1])
assert (table.groupby("relation")["verdict"].nunique() == 1).all(), table
verdict = table.groupby("relation")["verdict"].first()
assert {"BLEU-1-references", "BLEU-4-references", "ROUGE-L-references", "alignment-order"} <= set(verdict.index), verdict
assert (verdict[["BLEU-1-references", "BLEU-4-references", "ROUGE-L-references"]] == "pass").all(), verdict
assert verdict["alignment-order"] == "stand-in" and not (verdict == "fail").any(), verdict
print(f"validation.csv ok: {verdict.value_counts().to_dict()}")
PYEOF
  grep -q "validate-judge validate-run" "$logs/jobs.tsv" || fail "jobs.tsv has no judge line"

  # judged: a second submission queues nothing
  local again
  again=$(submit_validate 2>&1) || fail "second submit.sh STAGES=validate failed"
  if [[ $again != *"nothing to submit"* ]] || grep -qE '^chexbench-[a-z-]+ [0-9]+$' <<< "$again"; then
    fail "re-submission of the judged validate chain queued: $again"
  fi
  say "validate chain: 6 jobs COMPLETED in make validate's order, the judgement written and its gate passed"
}

# --- then the per-stage chain (GENERATE_ARGS, ...) on the demo's tiny models and inputs ------------------------------
# SLURM_TEST_ONLY=validate: the validate chain alone (while working on it; the whole test runs it last).
run_pipeline() {
  results=$work/Results
  export CHEXBENCH_CACHE_DIR=$work/cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  mkdir -p "$results"
  if [[ ${SLURM_TEST_ONLY:-} == validate ]]; then
    run_validate_chain
    return
  fi
  run_whole_bench

  mkdir -p "$work/models"
  ln -s "$results/demo/default/models/tiny-sana" "$work/models/sana"
  ln -s "$results/demo/default/models/tiny-raddino" "$work/models/raddino"
  py -c "import sys; from chexbench_generate.tiny import write_tiny_config; write_tiny_config('sana', sys.argv[1])" \
    "$work/models/sana.json" || fail "tiny sana config"
  inputs=$results/demo/default/inputs
  n_real=$(py -c "import pandas as pd, sys; print(len(pd.read_parquet(sys.argv[1])))" "$inputs/prompts.parquet")

  # job ids grow: those of this chain come after this marker job's
  first_job=$(($(sbatch --parsable --job-name=marker --mem=10M --output=/dev/null --wrap true) + 1))
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
  jobcomp > "$work/chain-jobs.txt"
  py - "$work/chain-jobs.txt" << 'EOF' || fail "the jobs did not run in dependency order"
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(sys.argv[1])]
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

  run_validate_chain
}
