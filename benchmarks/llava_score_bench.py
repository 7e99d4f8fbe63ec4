"""Scoring throughput of `chexbench-llava-report score`: 3,000 generated findings against their
references, BLEU-1/4 (sacrebleu), ROUGE-L (rouge-score) and CheXbert F1 with a random CheXbert (tiny by default;
`--full-size` for BERT-base dimensions), each metric with 500 bootstrap resamples over reports; per phase and end to
end through the stage (`score.run`, which also writes the tables). F1-RadGraph is not included: it runs in
.venv-radgraph.

    .venv/bin/python benchmarks/llava_score_bench.py [--reports 3000 --bootstrap 500 --full-size --device cpu]

Results: benchmarks/results/llava_report_score.json (one entry per device and model size) and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from chexbench_common.stats import bootstrap_counts
from chexbench_llava_report.chexbert import CheXbert, LabelCounts, binary, f1_scores, write_tiny_chexbert
from chexbench_llava_report.score import Request, run
from chexbench_llava_report.text_metrics import CorpusBleu, rouge_l
from machine import cpu_model

RESULTS = Path(__file__).parent / "results"
PHRASES = (
    "no acute cardiopulmonary process.",
    "the heart is normal size.",
    "mild cardiomegaly.",
    "moderate cardiomegaly is stable since prior.",
    "small left pleural effusion.",
    "bilateral pleural effusions with bibasilar atelectasis.",
    "no pleural effusion or pneumothorax.",
    "mild pulmonary edema.",
    "focal consolidation in the right lung may be pneumonia.",
    "lungs are clear.",
    "rib fracture is seen.",
    "tube and line in place.",
    "possible nodule.",
    "enlarged cardiomediastinum.",
    "there is no focal consolidation.",
)


def reports(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)

    def one() -> str:
        return " ".join(rng.sample(PHRASES, rng.randint(3, 8)))

    return [one() for _ in range(n)], [one() for _ in range(n)]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--full-size", action="store_true", help="BERT-base dimensions (768 hidden, 12 layers)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CHEXBENCH_PROGRESS", "none")
    device = torch.device(args.device)
    refs, gens = reports(args.reports, seed=0)
    counts = bootstrap_counts(args.reports, args.bootstrap, seed=0).astype(float)
    phases = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = {"hidden": 768, "layers": 12} if args.full_size else {"hidden": 32, "layers": 2}
        checkpoint, tokenizer = write_tiny_chexbert(tmp / "chexbert", seed=0, **size)

        def bleu():
            for order in (1, 4):
                CorpusBleu.compute(gens, refs, order).resampled(counts)

        _, phases["bleu_1_and_4_with_bootstrap_s"] = timed(bleu)
        _, phases["rouge_l_with_bootstrap_s"] = timed(lambda: counts @ rouge_l(gens, refs, False))
        labeler = CheXbert.load(checkpoint, tokenizer, device)
        classes, phases["chexbert_label_s"] = timed(lambda: labeler.label(refs + gens, args.batch))
        tokens = float(np.mean([len(labeler.tokenizer.tokenize(r)) + 2 for r in refs + gens]))

        def f1():
            for positive in (False, True):
                lc = LabelCounts.of(binary(classes[: len(refs)], positive), binary(classes[len(refs) :], positive))
                resampled = lc.totals(counts)
                for columns in (range(14), [1, 4, 5, 7, 9]):
                    f1_scores(*resampled, columns)

        _, phases["chexbert_f1_with_bootstrap_s"] = timed(f1)
        predictions = tmp / "predictions.parquet"
        pd.DataFrame({"prompt_id": range(len(refs)), "reference": refs, "generated": gens}).to_parquet(predictions)
        request = Request(
            results=tmp / "Results",
            model="bench",
            run_id="r",
            predictions=(f"p100={predictions}",),
            chexbert=checkpoint,
            chexbert_tokenizer=tokenizer,
            bootstrap=args.bootstrap,
            batch_size=args.batch,
            device=args.device,
        )
        _, end_to_end = timed(lambda: run(request))
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads ({cpu_model()})"
    )
    entry = {
        "device": name,
        "chexbert": "BERT-base size (random)" if args.full_size else "tiny (32 hidden, 2 layers, random)",
        "reports": args.reports,
        "bootstrap": args.bootstrap,
        "batch": args.batch,
        "mean_tokens_per_report": round(tokens, 1),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "chexbert_texts_per_s": round(2 * args.reports / phases["chexbert_label_s"], 1),
        "end_to_end_s": round(end_to_end, 2),
        "end_to_end_reports_per_s": round(args.reports / end_to_end, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": round(os.getloadavg()[0], 2),
    }
    path = RESULTS / "llava_report_score.json"
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if (e["device"], e["chexbert"]) != (entry["device"], entry["chexbert"])] + [entry]
    path.write_text(json.dumps(entries, indent=2) + "\n")
    write_markdown(entries)
    print(json.dumps(entry, indent=2))


def write_markdown(entries: list[dict]) -> None:
    lines = [
        "# llava-report scoring throughput",
        "",
        "Written by `benchmarks/llava_score_bench.py`: generated findings scored against their references with",
        "BLEU-1/4, ROUGE-L and CheXbert F1 (random weights), every metric with its bootstrap resamples over reports;",
        "end to end = `score.run` (reading the table, every metric and CI, writing all outputs). F1-RadGraph is not",
        "included (it runs in .venv-radgraph). The CheXbert labels are each distinct text labelled once.",
        "",
        "| device | CheXbert | reports | resamples | tokens/report | BLEU-1+4 (s) | ROUGE-L (s) | CheXbert labelling "
        "(s; texts/s: reference + generated) | F1 + CIs (s) | end to end (s; reports/s) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        p = e["phases_s"]
        lines.append(
            f"| {e['device']} | {e['chexbert']} | {e['reports']} | {e['bootstrap']} | {e['mean_tokens_per_report']} | "
            f"{p['bleu_1_and_4_with_bootstrap_s']} | {p['rouge_l_with_bootstrap_s']} | {p['chexbert_label_s']}; "
            f"{e['chexbert_texts_per_s']} | {p['chexbert_f1_with_bootstrap_s']} | {e['end_to_end_s']}; "
            f"{e['end_to_end_reports_per_s']} | {e['load_average']} |"
        )
    (RESULTS / "llava_report_score.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
