"""`chexbench-llava-report score`: generated findings against the real ones, per predictions table (a setting such
as p10, p100, zero-shot): BLEU-1/4, ROUGE-L, CheXbert F1 (micro/macro, 14 and 5 conditions, uncertain as - and +),
F1-RadGraph, each with a percentile bootstrap CI over reports; a metrics table, a per-sample table, per-condition
breakdowns and the original's main/breakdown CSV layout."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path, write_text_atomic
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_path
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.options import FOLDER_NAME
from chexbench_common.progress import Progress
from chexbench_common.rundir import StageRun, is_finished
from chexbench_common.stats import bootstrap_counts, percentile_interval
from chexbench_schema import write_table
from chexbench_schema.metrics import MetricRow, metrics_frame

from . import __version__, naming, radgraph_scorer, text_metrics
from .chexbert import CONDITIONS, FIVE, CheXbert, LabelCounts, binary, f1_scores, per_label

log = logging.getLogger(__name__)
STAGE = "llava-report"
PRODUCER = f"chexbench-{STAGE} {__version__}"
COLUMNS = ("prompt_id", "reference", "generated")
METRICS, PER_SAMPLE, BREAKDOWN, ORIGINAL = "metrics.parquet", "per_sample.parquet", "breakdown.csv", "original"
VARIANTS = {"": False, "+": True}  # metric-name suffix -> uncertain counted as positive
CHEXBERT_METRICS = tuple(f"{a}-F1-{k}{s}" for s in VARIANTS for a in ("Micro", "Macro") for k in (14, 5))
# the original's main_*.csv columns, in its order
ORIGINAL_COLUMNS = (
    *(f"{a}-F1-{k}" for a in ("Micro", "Macro") for k in (14, 5)),
    *(f"{a}-F1-{k}+" for a in ("Micro", "Macro") for k in (14, 5)),
    "F1-RadGraph",
    "BLEU-1",
    "BLEU-4",
    "ROUGE-L",
)
# the original's rows, then the value on all reports; original/main_rows.csv says what each cell holds
ORIGINAL_ROWS = ("median", "ci_l", "ci_h", "point")
BLEU_COLUMNS = ("BLEU-1", "BLEU-4")
ORIGINAL_LABELS = "main_rows.csv"


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    predictions: tuple[str, ...] = ()  # "[NAME=]PATH"; empty: every finished generate-* folder of the run
    chexbert: Path | None = None
    chexbert_tokenizer: Path | None = None
    radgraph_model: Path | None = None
    radgraph_type: str = "radgraph"
    radgraph_backbone: Path | None = None
    rouge_stemmer: bool = False
    bootstrap: int = 500
    ci_level: float = 0.95
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"
    force: bool = False


def stage_run(request: Request) -> StageRun:
    return StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)


def _named(spec: str) -> tuple[str, Path]:
    """'NAME=PATH' or PATH; the default name is the generate folder's setting (generate-p10 -> p10)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = "", spec
    path = Path(path)
    if not name:
        folder = path.parent.name
        name = folder.removeprefix("generate-") if folder.startswith("generate-") else path.stem
    if not FOLDER_NAME.fullmatch(name):
        raise BadInputError(f"--predictions {spec}: setting name {name!r} must use letters, digits and . _ + -")
    return name, path


def find_predictions(request: Request) -> dict[str, Path]:
    """The predictions tables to score, by setting name."""
    if request.predictions:
        found: dict[str, Path] = {}
        for spec in request.predictions:
            name, path = _named(spec)
            if name in found:
                raise BadInputError(f"--predictions: two tables are named {name!r}; name them with NAME=PATH")
            found[name] = path
        return found
    stage_dir = stage_run(request).dir
    folders = sorted(p for p in stage_dir.glob("generate-*") if (p / "predictions.parquet").is_file())
    finished = [p for p in folders if is_finished(p)]
    if not finished:
        hint = f" ({len(folders)} unfinished)" if folders else ""
        raise BadInputError(
            f"{stage_dir}: no finished generate-*/predictions.parquet{hint}; run `chexbench-llava-report generate` "
            "first or pass --predictions FILE (columns prompt_id, reference, generated)"
        )
    return {p.name.removeprefix("generate-"): p / "predictions.parquet" for p in finished}


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions table (parquet or CSV) with prompt_id, reference and generated; one clear line per problem."""
    if not path.is_file():
        raise BadInputError(f"{path}: predictions table not found")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={"prompt_id": str}, keep_default_na=False, na_values=[])
        else:
            raise BadInputError(f"{path}: use a .parquet or .csv predictions table")
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable table ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(COLUMNS)}")
    if frame.empty:
        raise BadInputError(f"{path}: no rows to score")
    line = 1 if path.suffix == ".csv" else None
    checks = {
        "prompt_id": frame["prompt_id"].isna(),
        "reference": ~frame["reference"].map(lambda v: isinstance(v, str) and bool(v.strip())),
        "generated": ~frame["generated"].map(lambda v: isinstance(v, str)),
    }
    for column, bad in checks.items():
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            where = f"row {row}" + (f" (line {row + line})" if line else "")
            what = "an empty or missing" if column != "generated" else "a missing (null)"
            raise BadInputError(f"{path} {where}: {what} {column}; {bad.sum()} row(s) in all")
    duplicated = frame["prompt_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0]) + 1
        raise BadInputError(f"{path} row {row}: prompt_id {frame['prompt_id'].iloc[row - 1]} appears twice")
    return frame[list(COLUMNS)].reset_index(drop=True)


@dataclass
class Metric:
    name: str
    value: float | None
    replicates: np.ndarray | None
    note: str

    def interval(self, level: float) -> tuple[float | None, float | None]:
        if self.replicates is None:
            return None, None
        low, high = percentile_interval(self.replicates, level)
        return (None if np.isnan(low) else low), (None if np.isnan(high) else high)


@dataclass
class SubsetScores:
    metrics: list[Metric]
    per_sample: pd.DataFrame
    breakdown: list[dict]
    original_breakdowns: dict[str, pd.DataFrame]  # "n"/"p" (uncertain as negative/positive) -> original layout


class Scorers:
    """The loaded scorers and what they are (versions, hashes), shared by every setting."""

    def __init__(self, request: Request):
        from chexbench_common.device import select_device

        self.request = request
        self.device = select_device(request.device) if request.chexbert or request.radgraph_model else None
        self.chexbert = None
        if request.chexbert is not None:
            if request.chexbert_tokenizer is None:
                raise BadInputError("--chexbert needs --chexbert-tokenizer (a local bert-base-uncased folder)")
            self.chexbert = CheXbert.load(request.chexbert, request.chexbert_tokenizer, self.device)
        self.radgraph_version = radgraph_scorer.installed_version()
        if request.radgraph_model is not None and self.radgraph_version is None:
            raise MissingResourceError(
                f"--radgraph-model was given but radgraph is not installed here; {radgraph_scorer.SETUP_HINT}"
            )
        self.versions = text_metrics.library_versions()
        self.label_cache: dict[str, np.ndarray] = {}

    def describe(self) -> dict:
        r = self.request
        described: dict = {"libraries": self.versions, "rouge_stemmer": r.rouge_stemmer}
        if self.chexbert is not None:
            described["chexbert"] = {
                "checkpoint_sha256": sha256_path(r.chexbert),
                "tokenizer_sha256": sha256_path(r.chexbert_tokenizer),
                "implementation": "native BERT + 13 four-way heads + No Finding head (f1chexbert 0.0.2's layout)",
                "conditions": list(CONDITIONS),
            }
        if r.radgraph_model is not None:
            described["radgraph"] = {
                "package": f"radgraph {self.radgraph_version}",
                "model_type": r.radgraph_type,
                "reward_level": "partial",
                "model_sha256": sha256_path(r.radgraph_model),
                "backbone": str(r.radgraph_backbone or radgraph_scorer.backbone_name(r.radgraph_model)),
            }
        return described

    def labels(self, reports: list[str]) -> np.ndarray:
        """CheXbert classes per report, each distinct text labelled once across settings."""
        new = sorted({r for r in reports if r not in self.label_cache})
        if new:
            with Progress(total=len(new), desc="CheXbert", unit="report") as progress:
                classes = self.chexbert.label(new, self.request.batch_size, progress)
            self.label_cache.update(zip(new, classes, strict=True))
        return np.stack([self.label_cache[r] for r in reports])


def _skip_note(flag: str) -> str:
    return f"skipped: weights missing ({flag})"


def score_subset(name: str, frame: pd.DataFrame, scorers: Scorers) -> SubsetScores:
    """Every metric of one setting, with the same bootstrap resamples (over reports) for all of them."""
    r = scorers.request
    generated, references = frame["generated"].tolist(), frame["reference"].tolist()
    n = len(frame)
    counts = bootstrap_counts(n, r.bootstrap, r.seed).astype(float) if r.bootstrap > 0 else None
    ci = (
        f"{r.ci_level:.0%} percentile bootstrap CI, {r.bootstrap} resamples over reports, seed {r.seed}"
        if counts is not None
        else "no CI (--bootstrap 0)"
    )
    metrics: list[Metric] = []
    per_sample = pd.DataFrame({"subset": name, "prompt_id": frame["prompt_id"].astype(str)})

    for order in (1, 4):
        bleu = text_metrics.CorpusBleu.compute(generated, references, order)
        note = f"sacrebleu {scorers.versions['sacrebleu']} BLEU(max_ngram_order={order}), 13a, 0-100; corpus; {ci}"
        reps = bleu.resampled(counts) if counts is not None else None
        metrics.append(Metric(f"BLEU-{order}", bleu.score(), reps, note))
        per_sample[f"bleu{order}_sentence"] = bleu.sentence_scores()

    rouge = text_metrics.rouge_l(generated, references, r.rouge_stemmer)
    stem = "on" if r.rouge_stemmer else "off"
    note = f"rouge-score {scorers.versions['rouge-score']} rougeL F-measure per report, mean; stemmer {stem}; {ci}"
    metrics.append(_mean_metric("ROUGE-L", rouge, counts, note))
    per_sample["rouge_l"] = rouge

    breakdown: list[dict] = []
    original_breakdowns: dict[str, pd.DataFrame] = {}
    if scorers.chexbert is None:
        metrics += [Metric(m, None, None, _skip_note("--chexbert")) for m in CHEXBERT_METRICS]
    else:
        ref_classes, gen_classes = scorers.labels(references), scorers.labels(generated)
        for i, condition in enumerate(CONDITIONS):
            per_sample[f"reference_{condition}"] = ref_classes[:, i]
            per_sample[f"generated_{condition}"] = gen_classes[:, i]
        five = [CONDITIONS.index(c) for c in FIVE]
        for suffix, positive in VARIANTS.items():
            label_counts = LabelCounts.of(binary(ref_classes, positive), binary(gen_classes, positive))
            totals = label_counts.totals()
            resampled = label_counts.totals(counts) if counts is not None else None
            mapping = "uncertain->positive" if positive else "uncertain->negative"
            for k, columns in ((14, range(len(CONDITIONS))), (5, five)):
                point = f1_scores(*totals, columns)
                reps = f1_scores(*resampled, columns) if resampled is not None else None
                for average in ("micro", "macro"):
                    note = f"CheXbert, {mapping}, blank/negative->0, {k} conditions; {ci}"
                    metrics.append(
                        Metric(
                            f"{average.capitalize()}-F1-{k}{suffix}",
                            float(point[average]),
                            None if reps is None else reps[average],
                            note,
                        )
                    )
            breakdown += _breakdown_rows(name, mapping, totals, resampled, r.ci_level)
            original_breakdowns["p" if positive else "n"] = _original_breakdown(totals)

    if r.radgraph_model is None:
        hint = "" if scorers.radgraph_version else "; radgraph runs in .venv-radgraph (make setup-radgraph)"
        metrics.append(Metric("F1-RadGraph", None, None, _skip_note("--radgraph-model") + hint))
    else:
        rewards = radgraph_scorer.partial_rewards(
            generated,
            references,
            r.radgraph_model,
            r.radgraph_type,
            r.radgraph_backbone,
            scorers.device,
        )
        note = f"radgraph {scorers.radgraph_version} {r.radgraph_type} partial reward, mean over reports; {ci}"
        metrics.append(_mean_metric("F1-RadGraph", rewards, counts, note))
        per_sample["radgraph_partial"] = rewards
    return SubsetScores(metrics, per_sample, breakdown, original_breakdowns)


def _mean_metric(name: str, values: np.ndarray, counts: np.ndarray | None, note: str) -> Metric:
    reps = None if counts is None else counts @ values / len(values)
    return Metric(name, float(np.mean(values)), reps, note)


def _breakdown_rows(subset, mapping, totals, resampled, level) -> list[dict]:
    stats = per_label(*totals)
    reps_f1 = per_label(*resampled)["f1"] if resampled is not None else None
    rows = []
    for i, condition in enumerate(CONDITIONS):
        low, high = percentile_interval(reps_f1[:, i], level) if reps_f1 is not None else (None, None)
        rows.append(
            {
                "subset": subset,
                "uncertain": mapping,
                "condition": condition,
                "precision": float(stats["precision"][i]),
                "recall": float(stats["recall"][i]),
                "f1": float(stats["f1"][i]),
                "f1_ci_low": low,
                "f1_ci_high": high,
                "support": int(stats["support"][i]),
            }
        )
    return rows


def _original_breakdown(totals) -> pd.DataFrame:
    """The original's breakdown_{p,n}_*.csv: f1-score, precision, recall, support per condition, then the micro
    and macro averages (as sklearn's classification report gives them)."""
    tp, fp, fn = totals
    stats = per_label(tp, fp, fn)
    table = pd.DataFrame(
        {
            "f1-score": stats["f1"],
            "precision": stats["precision"],
            "recall": stats["recall"],
            "support": stats["support"],
        },
        index=list(CONDITIONS),
    )
    micro = per_label(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))
    table.loc["micro avg"] = [micro["f1"][0], micro["precision"][0], micro["recall"][0], micro["support"][0]]
    table.loc["macro avg"] = [
        stats["f1"].mean(),
        stats["precision"].mean(),
        stats["recall"].mean(),
        stats["support"].sum(),
    ]
    table["support"] = table["support"].astype(int)
    return table


def group_seeds(tables: dict[str, pd.DataFrame]) -> dict[str, dict[int, str]]:
    """The tables by setting and training seed (`p50`, `p50-seed1`, ... are seeds 0, 1, ... of `p50`), seeds in
    order. The seeds of one setting must hold the same reports in the same order: their resamples are shared."""
    groups: dict[str, dict[int, str]] = {}
    for name in tables:
        setting, seed = naming.split_seed(name)
        if seed in groups.setdefault(setting, {}):
            raise BadInputError(
                f"--predictions: {groups[setting][seed]!r} and {name!r} are both seed {seed} of {setting}"
            )
        groups[setting][seed] = name
    for setting, members in groups.items():
        groups[setting] = dict(sorted(members.items()))
        first, *others = groups[setting].values()
        ids = tables[first]["prompt_id"].astype(str).tolist()
        for name in others:
            if tables[name]["prompt_id"].astype(str).tolist() != ids:
                raise BadInputError(
                    f"predictions {name!r} and {first!r} are seeds of {setting} but do not hold the same reports in "
                    "the same order (prompt_id); generate both for the same TEST prompts or name them apart"
                )
    return groups


def seed_mean(per_seed: list[SubsetScores], seeds: list[int], request: Request) -> list[Metric]:
    """Every metric's mean over the training seeds, with a two-level percentile bootstrap: each replicate takes the
    seeds' own resample of the reports and draws the seeds with replacement (numpy default_rng([--seed, 1]))."""
    draws = None
    if request.bootstrap > 0:
        draws = np.random.default_rng([request.seed, 1]).integers(0, len(seeds), size=(request.bootstrap, len(seeds)))
    listed = ", ".join(map(str, seeds))
    ci = (
        f"{request.ci_level:.0%} percentile bootstrap CI over reports and seeds, {request.bootstrap} resamples of the "
        f"reports (the seeds' own) each with {len(seeds)} seeds drawn with replacement"
        if draws is not None
        else "no CI (--bootstrap 0)"
    )
    out = []
    for metrics in zip(*(scores.metrics for scores in per_seed), strict=True):
        first = metrics[0]
        if any(m.value is None for m in metrics):
            out.append(Metric(first.name, None, None, first.note))
            continue
        values = np.array([m.value for m in metrics])
        replicates = None
        if draws is not None:
            table = np.stack([m.replicates for m in metrics], axis=1)  # (resamples, seeds)
            replicates = np.take_along_axis(table, draws, axis=1).mean(axis=1)
        note = f"mean over {len(seeds)} training seeds ({listed}), std {values.std(ddof=1):.4g}; {ci}; each seed: "
        out.append(Metric(first.name, float(values.mean()), replicates, note + first.note))
    return out


def _metric_rows(request: Request, subset: str, metrics: list[Metric], n: int) -> list[MetricRow]:
    return [
        MetricRow(m.name, m.value, subset, None, *m.interval(request.ci_level), n_real=n, note=m.note) for m in metrics
    ]


def _original_main(scores: SubsetScores, level: float) -> pd.DataFrame:
    """The original's main_*.csv, each row filled as LLaVA-Rad's evaluation fills it (CheXGenBench runs it unchanged):
    BLEU's `median` is the value on all reports and its ci_l/ci_h the replicates' mean minus/plus half their central
    interval (sacrebleu); every other column's `median` is the median of the replicates and ci_l/ci_h their
    percentile interval. Then `point`: every column's value on all reports. Empty where skipped."""
    table = {}
    for metric in scores.metrics:
        if metric.name not in ORIGINAL_COLUMNS:
            continue
        if metric.replicates is None:
            table[metric.name] = [metric.value, None, None, metric.value]
        elif metric.name in BLEU_COLUMNS:
            mean, half = sacrebleu_interval(metric.replicates, level)
            table[metric.name] = [metric.value, mean - half, mean + half, metric.value]
        else:
            low, high = metric.interval(level)
            table[metric.name] = [float(np.median(metric.replicates)), low, high, metric.value]
    return pd.DataFrame({column: table[column] for column in ORIGINAL_COLUMNS}, index=list(ORIGINAL_ROWS))


def sacrebleu_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """(mean, half-width) as sacrebleu's bootstrap reports BLEU: the replicates' mean and half the distance between
    the order statistics that cut (1 - level) / 2 of them off each end (at 95 %: index n // 40 and n - n // 40 - 1)."""
    ordered = np.sort(np.asarray(replicates, dtype=float))
    cut = int(round(len(ordered) * (1 - level) / 2, 9))
    return float(ordered.mean()), float(0.5 * (ordered[len(ordered) - cut - 1] - ordered[cut]))


def original_row_labels(request: Request) -> pd.DataFrame:
    """What every cell of original/main_*.csv holds (original/main_rows.csv), in words."""
    draws = f"{request.bootstrap} bootstrap resamples of the reports (seed {request.seed})"
    outer = f"{(1 - request.ci_level) / 2:.4g}"
    rows = []
    for column in ORIGINAL_COLUMNS:
        if request.bootstrap == 0:
            meaning = dict.fromkeys(("ci_l", "ci_h"), "empty: no resamples (--bootstrap 0)")
            meaning["median"] = "value on all reports (no resamples: --bootstrap 0)"
        elif column in BLEU_COLUMNS:
            meaning = {
                "median": "value on all reports (sacrebleu's corpus score, which LLaVA-Rad writes in this row; "
                "not a median)",
                "ci_l": f"mean of the {draws} minus half the distance between the order statistics that cut a "
                f"fraction {outer} off each end (sacrebleu's interval)",
                "ci_h": "the same mean plus that half-distance",
            }
        else:
            meaning = {
                "median": f"median of the {draws}",
                "ci_l": f"{outer} quantile of the {draws} (percentile interval, {request.ci_level:.0%})",
                "ci_h": f"{1 - float(outer):.4g} quantile of the {draws}",
            }
        meaning["point"] = "value on all reports (the metrics table's value)"
        rows += [{"row": row, "column": column, "meaning": meaning[row]} for row in ORIGINAL_ROWS]
    return pd.DataFrame(rows)


def run(request: Request) -> tuple[StageRun, bool]:
    stage = stage_run(request)
    with Lifecycle(stage, force=request.force) as life:
        paths = find_predictions(request)
        tables = {name: read_predictions(path) for name, path in paths.items()}
        groups = group_seeds(tables)
        inputs = {f"predictions_{name}": path for name, path in paths.items()}
        for key in ("chexbert", "chexbert_tokenizer", "radgraph_model", "radgraph_backbone"):
            if getattr(request, key) is not None:
                inputs[key] = getattr(request, key)
        params = {
            "settings": sorted(tables),
            "bootstrap": request.bootstrap,
            "ci_level": request.ci_level,
            "seed": request.seed,
            "rouge_stemmer": request.rouge_stemmer,
            "radgraph_type": request.radgraph_type if request.radgraph_model else None,
        }
        if life.up_to_date(params, inputs):
            return stage, False
        scorers = Scorers(request)  # loads CheXbert: only when there is work to do
        old = list((stage.dir / ORIGINAL).glob("*.csv"))  # the original-layout files of the previous run
        scorer_facts = scorers.describe()
        weights = {k: v for k, v in _weights(scorer_facts).items() if v}
        life.start(params, inputs, weights=weights, clear=[METRICS, PER_SAMPLE, BREAKDOWN, *old])
        rows, samples, breakdown, originals = [], [], [], {}
        for setting, members in groups.items():
            scored = _score_setting(request, scorers, setting, {seed: tables[name] for seed, name in members.items()})
            rows += scored[0]
            samples += scored[1]
            breakdown += scored[2]
            originals |= scored[3]
        originals[ORIGINAL_LABELS] = original_row_labels(request).set_index("row")
        outputs = _write(stage, request, rows, samples, breakdown, originals, scorer_facts)
        seeds = {setting: sorted(members) for setting, members in groups.items() if len(members) > 1}
        counts = {name: len(frame) for name, frame in tables.items()}
        life.update(scorers=scorer_facts, counts=counts, training_seeds=seeds)
        life.finish(outputs)
    return stage, True


def _score_setting(request: Request, scorers: Scorers, setting: str, seeds: dict[int, pd.DataFrame]):
    """One setting's metrics rows, per-sample tables, breakdown rows and original-layout tables: as it is when it has
    one training seed; else each seed as `<setting>/seed<S>` and their mean as `<setting>`."""
    several = len(seeds) > 1
    rows, samples, breakdown, originals, per_seed = [], [], [], {}, []
    for seed, frame in seeds.items():
        subset = naming.seed_subset(setting, seed) if several else setting
        log.info("llava-report score: %s (%d reports)", subset, len(frame))
        scores = score_subset(subset, frame, scorers)
        per_seed.append(scores)
        rows += _metric_rows(request, subset, scores.metrics, len(frame))
        samples.append(scores.per_sample)
        breakdown += scores.breakdown
        file_name = f"{setting}-seed{seed}" if several else setting
        originals[f"main_{file_name}.csv"] = _original_main(scores, request.ci_level)
        for variant, table in scores.original_breakdowns.items():
            originals[f"breakdown_{variant}_{file_name}.csv"] = table
    if several:  # every seed scored the same reports
        rows += _metric_rows(request, setting, seed_mean(per_seed, list(seeds), request), len(frame))
    return rows, samples, breakdown, originals


def _weights(facts: dict) -> dict[str, str]:
    return {
        "chexbert": facts.get("chexbert", {}).get("checkpoint_sha256"),
        "radgraph": facts.get("radgraph", {}).get("model_sha256"),
    }


def _write(stage, request, rows, samples, breakdown, originals, facts) -> dict:
    outputs = {
        "metrics": write_table(
            metrics_frame(rows, model=request.model, run_id=request.run_id, stage=STAGE),
            stage.dir / METRICS,
            "metrics",
            producer=PRODUCER,
            run_id=request.run_id,
            extra={"scorers": facts},
        )
    }
    with atomic_path(stage.dir / PER_SAMPLE) as tmp:
        pd.concat(samples, ignore_index=True).to_parquet(tmp, index=False)
    outputs["per_sample"] = stage.dir / PER_SAMPLE
    if breakdown:
        write_text_atomic(stage.dir / BREAKDOWN, pd.DataFrame(breakdown).to_csv(index=False))
        outputs["breakdown"] = stage.dir / BREAKDOWN
    for file_name, table in originals.items():
        write_text_atomic(stage.dir / ORIGINAL / file_name, table.to_csv())
        outputs[f"original/{file_name}"] = stage.dir / ORIGINAL / file_name
    return outputs
