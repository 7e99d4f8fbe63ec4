#!/usr/bin/env bash
# GPU figures in one prepared run (at most 8 minutes): the GPU halves of the generate, embed, classify and
# llava-report benchmarks, each with the GPU utilisation nvidia-smi samples while it runs and its throughput against
# the device's bf16 bound measured first in the same run. Writes gpu.json and gpu.md (the summary) next to each
# part's own results (embed.json, classify_gpu.json, llava_report_gpu.json, generate_gpu.json) in benchmarks/results/.
#
#   bash benchmarks/gpu.sh                      on a machine with a CUDA GPU (weights: none needed, see generate)
#   SANA_DIR=/models/sana bash benchmarks/gpu.sh   generate measured on the real Sana (PIXART_DIR: PixArt-Σ too)
#   bash benchmarks/gpu.sh --check [--out DIR]  every part's code path on the CPU at toy sizes, into a temporary folder
#                                               (or DIR), never into benchmarks/results/: what the tests run
#
# Parts, each under its own time limit (seconds): bound 30, embed 120, classify 60, llava-report 180, generate 60.
# generate needs the real pipeline's weights (SANA_DIR / PIXART_DIR, nothing is downloaded); without them the part
# is recorded as skipped, and --check runs it on tiny random pipelines. PYTHON (default .venv/bin/python) runs the
# parts. Exit: 0 when every part that ran passed, 1 otherwise (the summary is written either way), 2 bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."

check=0
out=""
while (($#)); do
  case $1 in
    --check) check=1 ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    -h | --help) sed -n '2,16p' "$0" | cut -c3-; exit 0 ;;
    *) echo "gpu.sh: unknown option '$1' (--check, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || { echo "gpu.sh: $PYTHON is not executable: run 'make setup' or set PYTHON" >&2; exit 2; }
if ((check)); then
  out=${out:-$(mktemp -d /tmp/chexbench-gpu-check.XXXXXX)}
else
  out=${out:-benchmarks/results}
  "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
    || { echo "gpu.sh: torch sees no CUDA GPU here (bash benchmarks/gpu.sh --check runs the code paths on the CPU)" >&2; exit 2; }
fi
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CHEXBENCH_PROGRESS=none TQDM_DISABLE=1
export PYTHONPATH=benchmarks${PYTHONPATH:+:$PYTHONPATH}
: > "$out/gpu-parts.tsv"
rm -f "$out"/gpu-util-*.txt
failed=0

# part NAME LIMIT COMMAND...: runs the command under `timeout LIMIT` while nvidia-smi samples the GPU's utilisation
# every 200 ms into gpu-util-NAME.txt (none without nvidia-smi), and records NAME, exit code, seconds in gpu-parts.tsv.
part() {
  local name=$1 limit=$2 sampler="" rc=0 t0
  shift 2
  echo "gpu.sh: $name (at most ${limit} s): $*" >&2
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -i 0 -lms 200 > "$out/gpu-util-$name.txt" &
    sampler=$!
  fi
  t0=$EPOCHREALTIME
  timeout "$limit" "$@" > "$out/gpu-$name.log" 2>&1 || rc=$?
  if [[ -n $sampler ]]; then kill "$sampler" 2> /dev/null; wait "$sampler" 2> /dev/null; fi
  local note=""
  ((rc == 124)) && note="timed out after $limit s"
  ((rc != 0)) && { failed=1; tail -n 5 "$out/gpu-$name.log" >&2; }
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')" "$note" >> "$out/gpu-parts.tsv"
}
skipped() { printf '%s\t0\t0\t%s\n' "$1" "$2" >> "$out/gpu-parts.tsv"; echo "gpu.sh: $1 skipped: $2" >&2; }

if ((check)); then
  # toy sizes; the time limits are the GPU run's, not the CPU's: a check on a busy CPU gets 10 minutes a part
  lim=600
  part bound "$lim" "$PYTHON" benchmarks/gpu_figures.py bound --device cpu --n 256 --out "$out"
  "$(dirname "$PYTHON")/chexbench-embed" tiny-raddino "$out/tiny-raddino" > /dev/null
  part embed "$lim" "$PYTHON" benchmarks/embed_bench.py gpu --device cpu --raddino "$out/tiny-raddino" \
    --batch-size 1 --repeats 1 --e2e-images 1 --out "$out"
  part classify "$lim" "$PYTHON" benchmarks/gpu_figures.py classify --device cpu --size 32 --batch 2 --steps 1 \
    --out "$out"
  part llava-report "$lim" "$PYTHON" benchmarks/llava_report_gpu.py --tiny --device cpu --steps 1 --batch 1 --out "$out"
  part generate "$lim" "$PYTHON" benchmarks/generate_gpu.py --tiny --device cpu --batch-sizes 1 --images 1 \
    --dtypes bfloat16 --out "$out"
else
  part bound 30 "$PYTHON" benchmarks/gpu_figures.py bound --device cuda --out "$out"
  part embed 120 "$PYTHON" benchmarks/embed_bench.py gpu --device cuda --repeats 10 --e2e-images 256 --out "$out"
  part classify 60 "$PYTHON" benchmarks/gpu_figures.py classify --device cuda --out "$out"
  part llava-report 180 "$PYTHON" benchmarks/llava_report_gpu.py --device cuda --out "$out"
  models=()
  [[ -n ${SANA_DIR:-} ]] && models+=(--sana "$SANA_DIR")
  [[ -n ${PIXART_DIR:-} ]] && models+=(--pixart "$PIXART_DIR")
  if ((${#models[@]})); then
    part generate 60 "$PYTHON" benchmarks/generate_gpu.py "${models[@]}" --device cuda --batch-sizes 1 8 --images 16 \
      --out "$out"
  else
    skipped generate "no weights: set SANA_DIR (and PIXART_DIR) to a local pipeline folder"
  fi
fi
"$PYTHON" benchmarks/gpu_figures.py summary --out "$out" > /dev/null || failed=1
echo "gpu.sh: wrote $out/gpu.md and $out/gpu.json" >&2
cat "$out/gpu.md"
exit "$failed"
