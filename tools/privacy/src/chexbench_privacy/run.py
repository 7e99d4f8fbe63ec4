"""`chexbench-privacy run`: validate every input, embed each image once, search, calibrate, write atomically.

Sets: the sampled TRAIN prompts and their generations (protocol), the whole TRAIN pool (nearest-neighbour search),
a patient-disjoint real holdout (null distribution of the thresholds) and the positive-control ladder (copies of
training images at named strengths). Spaces: every extractor given (`--extractor`, repeatable; distances
||a - b|| / sqrt(d); the first is the protocol's latent space) and the re-ID network's embedding, whose head
re-scores the top-k pairs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import write_text_atomic
from chexbench_common.device import select_device
from chexbench_common.errors import BadInputError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun
from chexbench_schema import read_table, write_table

from . import __version__
from .controls import diagnose, view
from .evidence import contact_sheet, flagged_pairs
from .images import ReidEncoder, map_ordered, pixel_distances, workers
from .inputs import (
    check_disjoint,
    check_same_space,
    images_root,
    load_images,
    load_prompts,
    load_space,
    load_strengths,
    route,
)
from .ladder import COPIES_THAT_MUST_BE_CAUGHT, ladder_record
from .memorisation import Audit
from .metrics_table import build, ladder_summary
from .protocol import per_prompt
from .provenance import REID, latent_weights, reid_weights
from .reid import describe, load_reid
from .sample import CONTROL_AUGMENTATIONS, CONTROL_TABLE, PROMPTS_OUT
from .sample import STAGE as SAMPLE_STAGE
from .settings import Settings

log = logging.getLogger(__name__)
STAGE = "privacy"
PRODUCER = f"chexbench-privacy {__version__}"
PER_PROMPT = "privacy_metrics.csv"  # the original's columns (it named the file privacy_metrics_<model>.csv)
PER_IMAGE = "per_image.csv"
PAIRS = "flagged_pairs.csv"
SHEET = "flagged_pairs.png"
THRESHOLDS = "thresholds.json"
METRICS = "metrics.parquet"
SPACES = "spaces.json"
OUTPUTS = (PER_PROMPT, PER_IMAGE, PAIRS, SHEET, THRESHOLDS, SPACES, METRICS)
ROLES = ("synth", "train", "holdout", "control")


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    train_prompts: Path
    holdout_prompts: Path
    real_root: Path
    reid_weights: Path
    chain_run: str | None = None  # the run holding generate/ and embed/ of the privacy chain [<run_id>.privacy]
    sample_dir: Path | None = None
    images: Path | None = None
    images_root: Path | None = None
    synth_embeddings: list[Path] = field(default_factory=list)
    train_embeddings: list[Path] = field(default_factory=list)
    holdout_embeddings: list[Path] = field(default_factory=list)
    control_embeddings: list[Path] = field(default_factory=list)
    extractors: list[str] = field(default_factory=lambda: ["raddino"])
    weights: dict[str, str] = field(default_factory=dict)  # declared weights status per space (provenance.py)
    settings: Settings = field(default_factory=Settings)
    device: str = "auto"
    batch_size: int = 32
    workers: int | None = None
    cache_dir: Path | None = None
    force: bool = False
    tables: dict = field(default_factory=dict)  # {extractor: {role: [paths]}}, filled by fill_defaults

    def fill_defaults(self) -> None:
        """The chain's conventional places: sample in <run>/privacy-sample, generations and their embeddings in
        <run>.privacy/, controls' embeddings in <run>.privacy-control/embed, the holdout's in <run>/embed; tables
        given on the command line replace them for the extractor their metadata names."""
        base = self.results / self.model
        chain = base / (self.chain_run or f"{self.run_id}.privacy")
        self.sample_dir = self.sample_dir or base / self.run_id / SAMPLE_STAGE
        self.images = self.images or chain / "generate" / "images.parquet"
        control_run = base / f"{chain.name}-control"
        given = {
            "synth": route(self.synth_embeddings, self.extractors, "--synth-embeddings"),
            "train": route(self.train_embeddings, self.extractors, "--train-embeddings"),
            "holdout": route(self.holdout_embeddings, self.extractors, "--holdout-embeddings"),
            "control": route(self.control_embeddings, self.extractors, "--control-embeddings"),
        }
        for e in self.extractors:
            defaults = {
                "synth": chain / "embed" / f"synthetic-{e}.parquet",
                "train": chain / "embed" / f"real-{e}.parquet",
                "holdout": base / self.run_id / "embed" / f"real-{e}.parquet",
                "control": control_run / "embed" / f"synthetic-{e}.parquet",
            }
            self.tables[e] = {role: given[role][e] or [defaults[role]] for role in ROLES}


@dataclass
class Plan:
    """Everything validated: tables, spaces, files."""

    sampled: pd.DataFrame
    train: pd.DataFrame
    holdout: pd.DataFrame
    synth: pd.DataFrame
    control: pd.DataFrame
    spaces: dict  # {extractor: {role: Space}}
    disjointness: str


def prepare(request: Request) -> Plan:
    request.fill_defaults()
    sample_prompts = request.sample_dir / PROMPTS_OUT
    if not sample_prompts.is_file():
        raise BadInputError(f"{sample_prompts}: no sampled prompts; run `chexbench-privacy sample` first")
    train = load_prompts(request.train_prompts, request.real_root, "training")
    holdout = load_prompts(request.holdout_prompts, request.real_root, "holdout")
    disjointness = check_disjoint(train, holdout, request.train_prompts, request.holdout_prompts)
    sampled = read_table(sample_prompts, "prompts")
    outside = sorted(set(sampled["prompt_id"]) - set(train["prompt_id"]))
    if outside:
        raise BadInputError(
            f"{sample_prompts}: {len(outside)} sampled prompt(s) are not in the training pool "
            f"{request.train_prompts} (first: {outside[0]}); sample from the same TRAIN table"
        )
    synth = load_images(request.images, images_root(request.images, request.images_root), "synthetic")
    unknown = sorted(set(synth["prompt_id"]) - set(sampled["prompt_id"]))
    if unknown:
        raise BadInputError(
            f"{request.images}: {len(unknown)} image(s) come from prompts that were not sampled (first prompt: "
            f"{unknown[0]}); generate from {sample_prompts}"
        )
    _check_seeds(synth, request.images)
    control_table = request.sample_dir / CONTROL_TABLE
    control = load_images(control_table, images_root(control_table, None), "positive-control")
    control["strength"] = load_strengths(request.sample_dir / CONTROL_AUGMENTATIONS, control)
    sources = {"synth": "synthetic", "train": "real", "holdout": "real", "control": "synthetic"}
    spaces = {}
    for e, tables in request.tables.items():
        spaces[e] = {role: load_space(tables[role], sources[role], e) for role in ROLES}
        for role in ("holdout", "synth", "control"):
            check_same_space(spaces[e]["train"], spaces[e][role], role)
    plan = Plan(sampled, train, holdout, synth, control, spaces, disjointness)
    # every row needs its vector: fail now, with the table and the id, rather than half-way
    for space in spaces.values():
        space["train"].take(train["prompt_id"], "training images")
        space["holdout"].take(holdout["prompt_id"], "holdout images")
        space["synth"].take(synth["image_id"], "synthetic images")
        space["control"].take(control["image_id"], "positive-control images")
    return plan


def _check_seeds(synth: pd.DataFrame, path: Path) -> None:
    """The original drew its 10 seeds with replacement; here the generations of one prompt must differ."""
    seeded = synth.dropna(subset=["seed"])
    repeated = seeded[seeded.duplicated(subset=["prompt_id", "seed"], keep=False)]
    if not repeated.empty:
        raise BadInputError(
            f"{path}: prompt {repeated['prompt_id'].iloc[0]} has repeated seeds ({int(repeated['seed'].iloc[0])}); "
            "generations of one prompt must use distinct seeds"
        )


def _params(request: Request) -> dict:
    return {
        "settings": asdict(request.settings),
        "extractors": request.extractors,
        "weights_declared": request.weights,
        "real_root": str(request.real_root),
        "reid_preprocessing": describe(request.settings.reid_preprocessing),
        "ladder": ladder_record(),
    }


def _inputs(request: Request) -> dict[str, Path]:
    inputs = {
        "train_prompts": request.train_prompts,
        "holdout_prompts": request.holdout_prompts,
        "sampled_prompts": request.sample_dir / PROMPTS_OUT,
        "images": request.images,
        "control_images": request.sample_dir / CONTROL_TABLE,
        "control_augmentations": request.sample_dir / CONTROL_AUGMENTATIONS,
        "reid_weights": request.reid_weights,
    }
    for e, tables in request.tables.items():
        for role in ROLES:
            inputs |= {f"{role}_embeddings_{e}_{i}": p for i, p in enumerate(tables[role])}
    return inputs


def _weights(request: Request, plan: Plan, model, weights_sha: str) -> dict:
    """Where each space's weights come from (provenance.py); a declaration for an unknown space is refused."""
    unknown = sorted(set(request.weights) - {*request.extractors, REID})
    if unknown:
        raise BadInputError(
            f"--weights {unknown[0]}=...: no such space in this audit (spaces: {', '.join(request.extractors)}, reid)"
        )
    out = {}
    for e in request.extractors:
        train = plan.spaces[e]["train"]
        out[e] = latent_weights(e, train.meta.get("weights_sha256"), train.vectors.shape[1], request.weights.get(e))
    out[REID] = reid_weights(weights_sha, model.model.conv1.out_channels, request.weights.get(REID))
    return out


def run(request: Request) -> tuple[StageRun, bool]:
    """Run the stage; returns (stage run, whether work was done)."""
    stage = StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)
    with Lifecycle(stage, force=request.force) as life:
        plan = prepare(request)
        model, weights_sha = load_reid(request.reid_weights, "cpu")
        weights = _weights(request, plan, model, weights_sha)
        params, inputs = _params(request), _inputs(request)
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, weights={"reid": weights_sha}, clear=list(OUTPUTS))
        device = select_device(request.device)
        encoder = ReidEncoder(
            model.to(device),
            weights_sha,
            request.settings.reid_preprocessing,
            device,
            batch_size=request.batch_size,
            n_workers=request.workers,
            cache_dir=_cache_dir(request),
        )
        audit = Audit(plan, encoder, request.settings, weights)
        per_image = audit.run()
        per_image = _with_pixels(per_image, plan, request)
        outputs = _write(stage, request, plan, audit, per_image)
        ladder = ladder_summary(audit, per_image)
        _log_spaces(audit, ladder)
        warnings = _warnings(audit, per_image, plan.disjointness)
        for warning in warnings:
            log.warning(warning)
        life.update(
            counts=audit.counts(),
            disjointness=plan.disjointness,
            reid_cache={"hits": encoder.hits, "misses": encoder.misses, "folder": str(encoder.cache_dir)},
            thresholds=audit.thresholds_record(),
            spaces=audit.spaces_record(),
            control_ladder=ladder,
            warnings=warnings,
        )
        life.finish(outputs)
    return stage, True


def _log_spaces(audit: Audit, ladder: dict) -> None:
    """One line per space: its weights, whether it discriminates, and its control ladder."""
    for name, inst in audit.instruments.items():
        steps = ", ".join(
            f"{step['strength']} {step['caught']}/{step['n']} caught, rank-1 {step['rank1']}/{step['n']}"
            for step in ladder[name]["strengths"]
        )
        state = "informative" if inst.informative else "NOT informative"
        log.info(
            "space %s: %s (%s); %s (spread %.3g, floor %g); control ladder: %s; detection limit: %s",
            name,
            inst.weights.label,
            inst.weights.evidence,
            state,
            inst.spread,
            inst.floor,
            steps,
            ladder[name]["detection_limit"] or "none",
        )


def _warnings(audit: Audit, per_image: pd.DataFrame, disjointness: str) -> list[str]:
    """What keeps this run's audit from seeing a copy, in words and numbers (logged, kept in the manifest)."""
    out = []
    for inst in audit.instruments.values():
        if not inst.informative:
            out.append(inst.not_informative())
            continue
        out += diagnose(per_image, view(inst), audit.settings.dcr_quantile, disjointness)
    if not any(inst.informative for inst in audit.instruments.values()):
        out.append("no space of the audit can discriminate: nothing is flagged and no privacy verdict is possible")
    else:
        control = per_image[per_image["set"] == "control"]
        must = control[control["strength"].isin(COPIES_THAT_MUST_BE_CAUGHT)]
        if not must["flag_any"].all():
            out.append(
                f"{int((~must['flag_any']).sum())} of {len(must)} exact or mild copies escape every rule of every "
                "space: the audit cannot vouch that copies are caught"
            )
    return out


def _cache_dir(request: Request) -> Path | None:
    if request.cache_dir is not None:
        return request.cache_dir
    from chexbench_common.env import configure_caches

    return configure_caches() / STAGE


def _with_pixels(per_image: pd.DataFrame, plan: Plan, request: Request) -> pd.DataFrame:
    """Float grey pixel distance of every generation to its prompt's source image (one common resolution)."""
    synth = plan.synth
    source = plan.train.set_index("prompt_id")["file"]
    groups = [(source[pid], list(rows["file"]), list(rows["image_id"])) for pid, rows in synth.groupby("prompt_id")]
    size = request.settings.pixel_size
    values = {}
    jobs = [(src, files) for src, files, _ in groups]
    results = map_ordered(_pixel_job(size), jobs, workers(request.workers))
    for (_, _, ids), distances in zip(groups, results, strict=True):
        values.update(zip(ids, distances, strict=True))
    per_image["pixel_source"] = per_image["image_id"].map(values).where(per_image["set"] == "synthetic")
    return per_image


class _pixel_job:  # a picklable callable for the worker pool
    def __init__(self, size: int):
        self.size = size

    def __call__(self, job):
        source, files = job
        return pixel_distances(source, files, self.size)


def _write(stage: StageRun, request: Request, plan: Plan, audit: Audit, per_image: pd.DataFrame) -> dict:
    synth_rows = per_image[per_image["set"] == "synthetic"]
    prompts_frame = per_prompt(synth_rows, plan.sampled, f"source_{audit.primary}")
    outputs = {"per_prompt": stage.dir / PER_PROMPT, "per_image": stage.dir / PER_IMAGE}
    write_text_atomic(outputs["per_prompt"], prompts_frame.to_csv(index=False))
    write_text_atomic(outputs["per_image"], per_image.to_csv(index=False))
    pairs = flagged_pairs(per_image, plan, request.settings.evidence_pairs, audit.instruments, audit.primary)
    outputs["flagged_pairs"] = stage.dir / PAIRS
    write_text_atomic(
        outputs["flagged_pairs"], pairs.drop(columns=["synthetic_file", "train_file"]).to_csv(index=False)
    )
    outputs["contact_sheet"] = contact_sheet(pairs, stage.dir / SHEET)
    outputs["thresholds"] = stage.dir / THRESHOLDS
    write_text_atomic(outputs["thresholds"], json.dumps(audit.thresholds_record(), indent=2) + "\n")
    outputs["spaces"] = stage.dir / SPACES
    write_text_atomic(outputs["spaces"], json.dumps(audit.spaces_record(), indent=2) + "\n")
    frame = build(audit, prompts_frame, per_image, request.model, request.run_id)
    outputs["metrics"] = write_table(frame, stage.dir / METRICS, "metrics", producer=PRODUCER, run_id=request.run_id)
    return outputs
