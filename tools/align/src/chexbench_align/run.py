"""`chexbench-align run`: score every generation against its prompt, plus the floor (prompts shuffled across
images) and, with --real-root, the ceiling (each real image against its own report); overall and per pathology."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import write_text_atomic
from chexbench_common.device import select_device
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun, generated_images
from chexbench_common.stats import cluster_bootstrap
from chexbench_schema import CHEXPERT_LABELS, write_table
from chexbench_schema.metrics import MetricRow, metrics_frame

from . import __version__
from .engine import cosines, derangement, embed_images, embed_texts
from .inputs import load_prompts, monochrome1_dicoms, real_pairs, synthetic_pairs
from .scorers import ENGINES, SCORERS

log = logging.getLogger(__name__)
STAGE = "align"
PRODUCER = f"chexbench-{STAGE} {__version__}"
SCORES, ORIGINAL, CONDITIONAL, METRICS = "scores.csv", "alignment.csv", "conditional_alignment.csv", "metrics.parquet"
OUTPUTS = (SCORES, ORIGINAL, CONDITIONAL, METRICS)
DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    prompts: Path
    image_weights: Path
    text_model: Path
    images: Path | None = None
    images_root: Path | None = None
    real_root: Path | None = None
    scorer: str = "biovil-t"
    engine: str = "native"  # biovil-t only: native (this package) or himl (hi-ml-multimodal, .venv-himl)
    precision: str = "fp32"
    conditional: bool = True
    bootstrap: int = 1000
    ci_level: float = 0.95
    seed: int = 42
    extra_info: str | None = None
    device: str = "auto"
    batch_size: int = 32
    workers: int = 0
    force: bool = False


def _scorer(request: Request, device):
    import torch

    dtype = DTYPES[request.precision]
    cls = ENGINES[request.engine] if request.scorer == "biovil-t" else SCORERS[request.scorer]
    return cls(request.image_weights, request.text_model, device, getattr(torch, dtype) if dtype else None)


def run(request: Request) -> tuple[StageRun, bool]:
    stage = StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)
    images = request.images or generated_images(request.results, request.model, request.run_id)
    with Lifecycle(stage, force=request.force) as life:
        device = select_device(request.device)
        scorer = _scorer(request, device)
        prompts = load_prompts(request.prompts, scorer.special_tokens())
        synth = synthetic_pairs(images, request.images_root, prompts, request.prompts).frame
        real = None
        if request.real_root is not None:
            real = real_pairs(prompts, request.prompts, request.real_root, synth["prompt_id"]).frame
        params = {k: str(v) for k, v in vars(request).items() if k not in ("force", "device", "workers", "batch_size")}
        params |= {"preprocessing": scorer.preprocessing}
        inputs = {
            "images": images,
            "prompts": request.prompts,
            "image_weights": request.image_weights,
            "text_model": request.text_model,
        }
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, weights=scorer.weights, clear=list(OUTPUTS))
        scores, truncated = _score(scorer, synth, real, request)
        inverted = monochrome1_dicoms(list(synth["file"]) + ([] if real is None else list(real["file"])))
        if inverted:
            log.warning(
                "%d images are MONOCHROME1 DICOMs (first: %s): BioViL-T's input, hi-ml's load_image, takes their "
                "stored samples without inverting them, so the network sees them with bone dark (counted in the "
                "manifest); export them as MONOCHROME2 or PNG to score them as displayed",
                len(inverted),
                inverted[0],
            )
        outputs = _write(stage, request, scores, truncated, scorer)
        life.update(
            counts=scores["set"].value_counts().to_dict(),
            monochrome1_dicoms=len(inverted),
            truncated_prompts=len(truncated),
            token_limit=scorer.max_tokens,
            scorer=scorer.name,
            engine=request.engine,
        )
        life.finish(outputs)
    return stage, True


def _score(scorer, synth: pd.DataFrame, real: pd.DataFrame | None, request: Request):
    texts = list(synth["prompt"]) + ([] if real is None else list(real["prompt"]))
    text_vectors, truncated = embed_texts(scorer, texts, request.batch_size)
    if truncated:
        log.warning(
            "%d prompts exceed the %d-token limit of %s and were truncated (counted in the manifest)",
            len(truncated),
            scorer.max_tokens,
            scorer.name,
        )
    synth_vectors = embed_images(scorer, list(synth["file"]), "synthetic", request.batch_size, request.workers)
    frames = [synth.assign(set="synthetic", score=cosines(synth_vectors, synth["prompt"], text_vectors))]
    order = derangement(synth["prompt_id"].to_numpy(), request.seed)
    floor = synth.assign(
        set="floor", prompt_id=synth["prompt_id"].to_numpy()[order], prompt=synth["prompt"].to_numpy()[order]
    )
    floor["score"] = cosines(synth_vectors, floor["prompt"], text_vectors)
    frames.append(floor)  # labels stay the image's own: the floor per pathology is that pathology's images, mismatched
    if real is not None:
        real_vectors = embed_images(scorer, list(real["file"]), "real", request.batch_size, request.workers)
        frames.append(real.assign(set="ceiling", score=cosines(real_vectors, real["prompt"], text_vectors)))
    scores = pd.concat(frames, ignore_index=True)
    scores["truncated"] = scores["prompt"].isin(truncated)
    return scores, truncated


def _summaries(scores: pd.DataFrame, request: Request, extractor: str) -> list[MetricRow]:
    rows = []
    groups = [("all", np.ones(len(scores), dtype=bool))]
    if request.conditional:
        groups += [(label, (scores[label] == 1).fillna(False).to_numpy(dtype=bool)) for label in CHEXPERT_LABELS]
    for subset, mask in groups:
        for name in ("synthetic", "floor", "ceiling"):
            part = scores[mask & (scores["set"] == name).to_numpy()]
            metric = {"synthetic": "alignment", "floor": "alignment_floor", "ceiling": "alignment_ceiling"}[name]
            n = {"n_real" if name == "ceiling" else "n_synth": len(part)}
            if part.empty:
                if name != "ceiling" or request.real_root is not None:
                    rows.append(MetricRow(metric, None, subset, extractor, **n, note="no images in this group"))
                continue
            low, high = cluster_bootstrap(
                part["score"].to_numpy(),
                request.bootstrap,
                request.ci_level,
                request.seed,
                clusters=part["prompt_id"].to_numpy(),
            )
            note = _note(name, request, int(part["truncated"].sum()))
            rows.append(MetricRow(metric, float(part["score"].mean()), subset, extractor, low, high, **n, note=note))
    return rows


def _note(name: str, request: Request, truncated: int) -> str:
    what = {
        "synthetic": "each generation vs its prompt",
        "floor": "generations vs other images' prompts (seeded)",
        "ceiling": "each real image vs its own report",
    }[name]
    cluster = "shuffled prompt" if name == "floor" else "prompt"
    return (
        f"{what}; cosine, mean over images, no rounding; {int(request.ci_level * 100)}% CI: percentile bootstrap, "
        f"{request.bootstrap} replicates resampling {cluster}s, seed {request.seed}; {truncated} truncated prompts"
    )


def _write(stage: StageRun, request: Request, scores: pd.DataFrame, truncated: set, scorer) -> dict:
    outputs = {"scores": stage.dir / SCORES}
    columns = ["set", "image_id", "prompt_id", "score", "truncated", "prompt"]
    write_text_atomic(outputs["scores"], scores[columns].to_csv(index=False))
    summaries = _summaries(scores, request, scorer.name)
    extra = request.extra_info or f"model={request.model}; run={request.run_id}; scorer={scorer.name}"
    main = [r for r in summaries if r.metric == "alignment"]
    original = pd.DataFrame([{"Alignment_score": r.value, "Extra Info": extra} for r in main if r.subset == "all"])
    outputs["alignment"] = stage.dir / ORIGINAL
    write_text_atomic(outputs["alignment"], original.to_csv(index=False))
    conditional = pd.DataFrame(
        [{"Alignment_score": r.value, "Extra Info": extra, "Pathology": r.subset} for r in main if r.subset != "all"],
        columns=["Alignment_score", "Extra Info", "Pathology"],
    )
    outputs["conditional"] = stage.dir / CONDITIONAL
    write_text_atomic(outputs["conditional"], conditional.to_csv(index=False))
    frame = metrics_frame(summaries, model=request.model, run_id=request.run_id, stage=STAGE)
    outputs["metrics"] = write_table(frame, stage.dir / METRICS, "metrics", producer=PRODUCER, run_id=request.run_id)
    return outputs
