"""`chexbench-fidelity run`: validate every input first, then compute, then write metrics + leaderboard atomically."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError, OutOfMemoryError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun, recorded_path, run_folder
from chexbench_schema import CHEXPERT_LABELS, read_metadata, write_table
from chexbench_schema.manifest import MANIFEST, read_manifest
from chexbench_schema.metrics import metrics_frame

from . import __version__
from .cache import StatsCache
from .evaluate import RADIOMICS, Evaluator, check_counts
from .groups import ALL, Group, build_catalogue, label_groups
from .inputs import LOGITS_SUFFIX, companion_tables, load_features, load_logits, logits_note, pair_features
from .leaderboard import LEADERBOARD, LEADERBOARD_CONDITIONAL, STAGE, leaderboard_frame, write_csv
from .settings import Settings

log = logging.getLogger(__name__)
PRODUCER = f"chexbench-fidelity {__version__}"
METRICS = "metrics.parquet"
ALPHA_BETA_PER_IMAGE = "alpha_beta_per_image.csv"
OUTPUTS = (METRICS, LEADERBOARD, LEADERBOARD_CONDITIONAL, ALPHA_BETA_PER_IMAGE)
PRDC_PREFERENCE = ("raddino", "dinov2", "inception")


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    real: list[Path] = field(default_factory=list)
    synth: list[Path] = field(default_factory=list)
    synth_logits: Path | None = None
    prompts: Path | None = None
    images: Path | None = None
    conditional: bool = False
    unconditional: bool = True
    pathologies: tuple[str, ...] = ()  # explicit request: an empty group is an error
    prdc_extractors: tuple[str, ...] = ()  # empty: the first of PRDC_PREFERENCE present
    settings: Settings = field(default_factory=Settings)
    extra_info: str = ""
    caption_type: str | None = None  # None: the prompts table's `caption_column` metadata, else empty
    cache_dir: Path | None = None  # None: $CHEXBENCH_CACHE_DIR/fidelity
    use_cache: bool = True
    force: bool = False
    train: list[Path] = field(default_factory=list)  # training images' embeddings: the data-copying test
    prompt_samples: list[Path] = field(default_factory=list)  # several synthetic images per prompt: per-prompt Vendi
    prompt_samples_images: Path | None = None  # their images table (the prompt of every sample)


def discover(request: Request) -> None:
    """Without --real/--synth, take <results>/<model>/<run_id>/embed/{real,synthetic}-*.parquet as features,
    synthetic-inception-logits.parquet as --synth-logits (unless given), and the prompts and images tables that embed
    read (its manifest) where --prompts / --images are not given. No *-logits table is taken as features."""
    if request.real or request.synth:
        return
    embed = run_folder(request.results, request.model, request.run_id) / "embed"
    record = read_manifest(embed, missing_ok=True)
    recorded = record.get("inputs", {})
    for name in ("prompts", "images"):
        path = recorded_path(record, recorded.get(name, {}).get("path", ""))
        if getattr(request, name) is None and recorded.get(name) and path.is_file():
            setattr(request, name, path)
            log.info("--%s %s (from %s)", name, path, embed / MANIFEST)
    request.real = sorted(p for p in embed.glob("real-*.parquet") if not p.stem.endswith(LOGITS_SUFFIX))
    request.synth = sorted(p for p in embed.glob("synthetic-*.parquet") if not p.stem.endswith(LOGITS_SUFFIX))
    logits = embed / f"synthetic-inception{LOGITS_SUFFIX}.parquet"
    if request.synth_logits is None and logits.is_file():
        request.synth_logits = logits
        log.info("--synth-logits %s (found beside the embeddings)", logits)
    if not request.real or not request.synth:
        raise BadInputError(
            f"no --real/--synth given and {embed} has no real-*.parquet and synthetic-*.parquet "
            "embeddings tables; run chexbench-embed first or pass the tables"
        )


def _prdc_extractors(request: Request, available: list[str]) -> tuple[str, ...]:
    if request.prdc_extractors:
        missing = [e for e in request.prdc_extractors if e not in available]
        if missing:
            raise BadInputError(
                f"--prdc-extractor {', '.join(missing)}: no such embeddings given (available: {', '.join(available)})"
            )
        return request.prdc_extractors
    return next(((e,) for e in PRDC_PREFERENCE if e in available), tuple(available[:1]))


def prepare(request: Request):
    """Load and cross-check every input and every group's sample counts; nothing is written."""
    discover(request)
    real = [load_features(p, "real") for p in request.real]
    synth = [load_features(p, "synthetic") for p in request.synth]
    pairs = pair_features(real, synth)
    logits = load_logits(request.synth_logits) if request.synth_logits else None
    catalogue = build_catalogue(request.prompts, request.images, real, synth + ([logits] if logits else []))
    features = [e for e in pairs if e != RADIOMICS]  # radiomics features get FRD only
    settings = Settings(**{**asdict(request.settings), "prdc_extractors": _prdc_extractors(request, features)})
    groups: list[tuple[Group, bool]] = []
    if request.unconditional:
        groups.append((Group(ALL), True))
    if request.conditional:
        explicit = bool(request.pathologies)
        groups += [(g, explicit) for g in label_groups(catalogue, request.pathologies or CHEXPERT_LABELS)]
    for group, strict in groups:
        for r, s in pairs.values():
            for problem in check_counts(group, r, s, settings, strict):
                log.warning("%s", problem)
        if logits is not None and strict and len(group.rows(logits)) < settings.is_splits:
            raise BadInputError(
                f"fewer samples than the Inception Score needs ({settings.is_splits} splits): "
                f"{len(group.rows(logits))} synthetic logits ({request.synth_logits}, {group.name})"
            )
    train = companion_tables(request.train, "real", pairs, "--train")
    samples = _prompt_samples(request, pairs)
    evaluator = Evaluator(pairs, catalogue, settings, _cache(request), logits, logits_note(pairs), train, samples)
    return evaluator, groups


def _prompt_samples(request: Request, pairs) -> dict:
    """{extractor: (prompt samples table, prompt of each row)} from --prompt-samples and --prompt-samples-images."""
    if not request.prompt_samples:
        if request.prompt_samples_images is not None:
            raise BadInputError("--prompt-samples-images needs --prompt-samples (their embeddings tables)")
        return {}
    if request.prompt_samples_images is None:
        raise BadInputError("--prompt-samples needs --prompt-samples-images (the prompt of every sample)")
    tables = companion_tables(request.prompt_samples, "synthetic", pairs, "--prompt-samples")
    catalogue = build_catalogue(None, request.prompt_samples_images, [], list(tables.values()))
    return {name: (fs, catalogue.unit(fs)) for name, fs in tables.items()}


def _cache(request: Request) -> StatsCache:
    if not request.use_cache:
        return StatsCache(None)
    if request.cache_dir is None:
        from chexbench_common.env import configure_caches

        return StatsCache(configure_caches() / STAGE)
    return StatsCache(request.cache_dir)


def _params(request: Request, evaluator: Evaluator, groups) -> dict:
    return {
        "settings": asdict(evaluator.settings),
        "groups": [g.name for g, _ in groups],
        "strict": [g.name for g, strict in groups if strict],
        "extra_info": request.extra_info,
        "caption_type": request.caption_type,
        "synth_logits": request.synth_logits is not None,
    }


def _inputs(request: Request) -> dict[str, Path]:
    inputs = {f"real_{i}": p for i, p in enumerate(request.real)}
    inputs |= {f"synth_{i}": p for i, p in enumerate(request.synth)}
    inputs |= {f"train_{i}": p for i, p in enumerate(request.train)}
    inputs |= {f"prompt_samples_{i}": p for i, p in enumerate(request.prompt_samples)}
    for name in ("synth_logits", "prompts", "images", "prompt_samples_images"):
        if getattr(request, name) is not None:
            inputs[name] = getattr(request, name)
    return inputs


def run(request: Request) -> tuple[StageRun, bool]:
    """Run the stage; returns (stage run, whether work was done). Inputs are validated before anything is written."""
    stage = StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)
    with Lifecycle(stage, force=request.force) as life:
        evaluator, groups = prepare(request)
        params, inputs = _params(request, evaluator, groups), _inputs(request)
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, clear=list(OUTPUTS))
        try:
            rows_by_group = {group.name: evaluator.group(group, strict) for group, strict in groups}
        except MemoryError:
            raise OutOfMemoryError(
                "out of host memory while computing fidelity metrics; use fewer samples, "
                "a smaller --tile or a machine with more memory"
            ) from None
        outputs = _write(stage, request, evaluator, rows_by_group)
        life.update(
            cache={
                "hits": evaluator.cache.hits,
                "misses": evaluator.cache.misses,
                "folder": str(evaluator.cache.folder),
            },
            counts={
                g: {f"{r.extractor}": [r.n_real, r.n_synth] for r in rows if r.metric == "FID"}
                for g, rows in rows_by_group.items()
            },
        )
        life.finish(outputs)
    return stage, True


def _write(stage: StageRun, request: Request, evaluator: Evaluator, rows_by_group: dict) -> dict[str, Path]:
    rows = [r for group_rows in rows_by_group.values() for r in group_rows]
    primary = next(iter(evaluator.settings.prdc_extractors), None)
    extra = request.extra_info or f"model={request.model}; run={request.run_id}"
    caption_type = request.caption_type
    if caption_type is None:
        caption_type = (
            read_metadata(request.prompts).get("extra", {}).get("caption_column", "") if request.prompts else ""
        )
    outputs = {}
    boards = {
        LEADERBOARD: [r for r in rows if r.subset == ALL],
        LEADERBOARD_CONDITIONAL: [r for r in rows if r.subset != ALL],
    }
    for name, board_rows in boards.items():
        if board_rows:
            frame = leaderboard_frame(
                board_rows,
                model=request.model,
                run_id=request.run_id,
                extra_info=extra,
                conditional=name == LEADERBOARD_CONDITIONAL,
                prdc_primary=primary,
                caption_type=caption_type or "",
            )
            outputs[name.removesuffix(".csv")] = write_csv(frame, stage.dir / name)
    if evaluator.per_image:
        frame = pd.concat(evaluator.per_image, ignore_index=True)
        outputs["alpha_beta_per_image"] = write_csv(frame, stage.dir / ALPHA_BETA_PER_IMAGE)
    outputs["metrics"] = write_table(
        metrics_frame([row.as_metric() for row in rows], model=request.model, run_id=request.run_id, stage=STAGE),
        stage.dir / METRICS,
        "metrics",
        producer=PRODUCER,
        run_id=request.run_id,
    )
    return outputs
