"""`chexbench-validate judge`: every relation that applies to the plan's sets, judged from the sets' own stage
outputs, written to <results>/<model>/validate/validate/ (validation.csv and a metrics table) through the stage
lifecycle.

A relation applies when the plan holds every control it names and every set of its series has a row of its metric,
not all of them skipped (an extractor not run on some of the sets, e.g. radiomics, or CheXbert without its weights,
leaves the relation out); the others are left out (logged, and listed in the manifest), so a plan of one axis judges
that axis. Each set's stage folder must have finished; a missing one is an error naming it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError, BadRowsError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import MANIFEST, StageRun, is_finished, run_folder
from chexbench_schema import read_table, write_table
from chexbench_schema.metrics import MetricRow, metrics_frame

from . import __version__
from .kinds import FAIL, KINDS, STAND_IN, UNDERPOWERED, VERDICTS, Judgement, Point, set_name
from .plan import read_plan
from .relations import Relation, default_path, load_relations
from .weights import PRIVACY_SPACES, UNVERIFIED, registry_pins, status_for, synthetic_tables
from .weights import STAND_IN as WEIGHTS_STAND_IN

log = logging.getLogger(__name__)
STAGE = "validate"
RUN_ID = "validate"
VALIDATION = "validation.csv"
METRICS = "metrics.parquet"
PRODUCER = f"chexbench-validate {__version__}"
COLUMNS = (
    "axis",
    "relation",
    "metric",
    "extractor",
    "control",
    "level",
    "level_label",
    "set_id",
    "run_id",
    "value",
    "ci_low",
    "ci_high",
    "expected",
    "kind",
    "statistic",
    "verdict",
    "reason",
    "weights",
    "gate",
)
RIDE_ALONG = ["axis", "metric", "control", "level", "expected", "kind", "verdict", "gate"]  # metric: source_metric


@dataclass(frozen=True)
class Request:
    results: Path
    model: str
    plan: Path
    relations: Path | None = None
    run_id: str = RUN_ID
    declared: dict | None = None  # extractor / scorer name -> real | stand-in
    registry: Path | None = None
    force: bool = False


def applicable(relations: list[Relation], plan: pd.DataFrame) -> tuple[list[Relation], list[Relation]]:
    """The relations whose axis and controls the plan holds, and the others."""
    held = set(zip(plan["axis"], plan["control"], strict=True))
    use = [r for r in relations if all((r.axis, c) in held for c in r.controls)]
    return use, [r for r in relations if r not in use]


def series(relation: Relation, plan: pd.DataFrame) -> pd.DataFrame:
    rows = plan[(plan["axis"] == relation.axis) & plan["control"].isin(relation.controls)]
    return rows.sort_values(["level", "set_id"], kind="stable")


class Tables:
    """The metrics tables of the sets' stage folders, each read once; unfinished folders collected as problems."""

    def __init__(self, results: Path, model: str):
        self.results, self.model = results, model
        self.frames: dict[Path, pd.DataFrame] = {}
        self.problems: list[str] = []

    def folder(self, run_id: str, stage: str) -> Path:
        return run_folder(self.results, self.model, run_id) / stage

    def check(self, run_id: str, stage: str) -> None:
        folder = self.folder(run_id, stage)
        if folder in self.frames or any(str(folder) in p for p in self.problems):
            return
        if not is_finished(folder):
            state = "has not run" if not (folder / MANIFEST).is_file() else "has not finished (no _SUCCESS)"
            self.problems.append(
                f"{folder}: the {stage} stage of set run {run_id} {state}; run the sets first (make validate)"
            )
            return
        if not (folder / METRICS).is_file():
            self.problems.append(f"{folder}: no {METRICS}")
            return
        self.frames[folder] = read_table(folder / METRICS, "metrics")

    def rows(self, relation: Relation, row) -> pd.DataFrame:
        """The metrics rows of the relation's metric for one planned set."""
        frame = self.frames[self.folder(row["run_id"], relation.stage)]
        extractor = frame["extractor"]
        same = extractor.isna() if relation.extractor is None else extractor == relation.extractor
        return frame[
            (frame["metric"] == relation.metric) & (frame["subset"] == relation.subset_for(row["set_id"])) & same
        ]

    def measured(self, relation: Relation, planned: pd.DataFrame) -> bool:
        """False when a set of the series has no row of the metric (its extractor did not run there: a stage writes
        a row with an empty value and a note where a metric is unavailable), or every row says the stage skipped it
        (no weights given)."""
        found = [self.rows(relation, row) for row in planned.to_dict("records")]
        if any(rows.empty for rows in found):
            return False
        rows = pd.concat(found)
        return not (rows["value"].isna() & rows["note"].fillna("").str.startswith("skipped")).all()

    def point(self, relation: Relation, row) -> Point:
        folder = self.folder(row["run_id"], relation.stage)
        found = self.rows(relation, row)
        if len(found) > 1:
            raise BadInputError(
                f"{folder / METRICS}: {len(found)} rows of {relation.metric} "
                f"({relation.extractor}, {relation.subset_for(row['set_id'])}); expected one"
            )
        base = {
            "set_id": row["set_id"],
            "control": row["control"],
            "level": float(row["level"]),
            "level_label": row["level_label"],
        }
        if found.empty:
            note = f"no {relation.metric} row ({relation.extractor or 'no extractor'}) in {folder / METRICS}"
            return Point(**base, value=None, ci_low=None, ci_high=None, note=note)
        hit = found.iloc[0]

        def num(name):
            value = hit[name]
            return None if pd.isna(value) else float(value)

        return Point(
            **base,
            value=num("value"),
            ci_low=num("ci_low"),
            ci_high=num("ci_high"),
            note="" if pd.isna(hit["note"]) else str(hit["note"]),
        )


def evaluate(relation: Relation, points: list[Point], status) -> Judgement:
    """The kind's judgement, then the weights rule: a stand-in is computed and shown, never judged."""
    judgement = KINDS[relation.kind](points, relation.params)
    if status.status == WEIGHTS_STAND_IN:
        return Judgement(
            STAND_IN,
            judgement.statistic,
            judgement.statistic_name,
            f"not judged ({status.evidence}); as computed: {judgement.verdict}, {judgement.reason}",
        )
    if status.status == UNVERIFIED:
        return Judgement(
            judgement.verdict,
            judgement.statistic,
            judgement.statistic_name,
            f"{judgement.reason} (weights unverified: {status.evidence})",
        )
    return judgement


def gate_failures(table: pd.DataFrame) -> pd.DataFrame:
    """The relations that make --strict fail: any `fail`, and `underpowered` where the relation's gate is `pass`."""
    one = table.drop_duplicates("relation")
    return one[(one["verdict"] == FAIL) | ((one["verdict"] == UNDERPOWERED) & (one["gate"] == "pass"))]


def judge(request: Request) -> tuple[StageRun, bool, pd.DataFrame]:
    """Judge every applicable relation; returns the stage, whether work was done and the validation table."""
    stage = StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)
    relations_path = request.relations or default_path()
    with Lifecycle(stage, force=request.force) as life:
        plan = read_plan(request.plan)
        use, left_out = applicable(load_relations(relations_path), plan)
        if not use:
            raise BadInputError(
                f"{request.plan}: no relation of {relations_path} applies to the plan's sets "
                f"(axes: {', '.join(sorted(set(plan['axis'])))})"
            )
        for relation in left_out:
            log.info("validate: %s left out: the plan lacks its controls %s", relation.id, ", ".join(relation.controls))
        tables = Tables(request.results, request.model)
        for relation in use:
            for run_id in series(relation, plan)["run_id"]:
                tables.check(run_id, relation.stage)
        if tables.problems:
            raise BadRowsError("", tables.problems)
        unmeasured = [r for r in use if not tables.measured(r, series(r, plan))]
        for relation in unmeasured:
            log.info(
                "validate: %s left out: a set's %s table has no %s row (%s), or the stage skipped it everywhere",
                relation.id,
                relation.stage,
                relation.metric,
                relation.extractor or "no extractor",
            )
        use = [r for r in use if r not in unmeasured]
        left_out = left_out + unmeasured
        if not use:
            raise BadInputError(f"{request.plan}: the sets' metrics tables hold no metric of any applicable relation")
        pins = registry_pins(request.registry)
        declared = dict(request.declared or {})
        inputs = {"plan": request.plan, "relations": relations_path}
        for folder in tables.frames:
            key = f"{folder.parent.name}/{folder.name}"
            inputs[f"{key}/metrics"], inputs[f"{key}/manifest"] = folder / METRICS, folder / MANIFEST
            inputs.update(_weights_evidence(folder))
        params = {"declared": declared, "registry_pins": sorted(pins)}
        if life.up_to_date(params, inputs):
            return stage, False, pd.read_csv(stage.dir / VALIDATION, keep_default_na=False)
        life.start(params, inputs, clear=[VALIDATION, METRICS])
        rows = []
        for relation in use:
            planned = series(relation, plan)
            points = [tables.point(relation, row) for row in planned.to_dict("records")]
            status = status_for(
                relation.weights,
                request.results,
                request.model,
                planned["run_id"].tolist(),
                relation.stage,
                declared,
                pins,
            )
            judgement = evaluate(relation, points, status)
            rows += _rows(relation, planned, points, judgement, status)
        table = _ordered(pd.DataFrame(rows, columns=COLUMNS), use)
        outputs = _write(stage, request, table)
        counts = table.drop_duplicates("relation")["verdict"].value_counts().to_dict()
        life.update(
            verdicts=counts, left_out=[r.id for r in left_out], gate_failures=gate_failures(table)["relation"].tolist()
        )
        life.finish(outputs)
    return stage, True, table


def _weights_evidence(folder: Path) -> dict[str, Path]:
    """The files a stage folder's weights status is read from besides its manifest (the run's embedding tables, a
    privacy run's spaces.json), so that other weights behind the same metrics redo the judgement."""
    run = folder.parent
    files = synthetic_tables(folder) + [folder / PRIVACY_SPACES]
    return {f"{run.name}/{path.parent.name}/{path.name}": path for path in files if path.is_file()}


def _rows(relation: Relation, planned: pd.DataFrame, points: list[Point], judgement: Judgement, status) -> list[dict]:
    return [
        {
            "axis": relation.axis,
            "relation": relation.id,
            "metric": relation.metric,
            "extractor": relation.extractor or "",
            "control": point.control,
            "level": point.level,
            "level_label": point.level_label,
            "set_id": point.set_id,
            "run_id": run_id,
            "value": point.value,
            "ci_low": point.ci_low,
            "ci_high": point.ci_high,
            "expected": relation.expected,
            "kind": relation.kind,
            "statistic": judgement.statistic,
            "verdict": judgement.verdict,
            "reason": judgement.reason,
            "weights": f"{status.status}: {status.evidence}",
            "gate": relation.gate,
        }
        for point, run_id in zip(points, planned["run_id"], strict=True)
    ]


def _ordered(table: pd.DataFrame, relations: list[Relation]) -> pd.DataFrame:
    """Failures first, then underpowered, stand-in and pass; within a verdict the relations file's order."""
    order = {r.id: i for i, r in enumerate(relations)}
    return (
        table.assign(_v=table["verdict"].map(VERDICTS.index), _r=table["relation"].map(order))
        .sort_values(["_v", "_r", "level"], kind="stable")
        .drop(columns=["_v", "_r"])
        .reset_index(drop=True)
    )


def metrics_rows(table: pd.DataFrame, request: Request) -> pd.DataFrame:
    """The metrics contract's view: one row per relation (subset `all`: its statistic, the verdict in the note) and
    one per point (the set's run id, subset = set id: the value and CI the relation was judged on); the validation
    columns ride along."""
    summary = table.drop_duplicates("relation")
    rows = [
        MetricRow(r.relation, r.statistic, "all", r.extractor or None, note=f"{r.verdict}: {r.reason}")
        for r in summary.itertuples()
    ]
    rows += [
        MetricRow(
            r.relation,
            r.value,
            r.set_id,
            r.extractor or None,
            r.ci_low,
            r.ci_high,
            note=set_name(r.control, r.level_label),
        )
        for r in table.itertuples()
    ]
    frame = metrics_frame(rows, model=request.model, run_id=request.run_id, stage=STAGE)
    frame["run_id"] = [request.run_id] * len(summary) + list(table["run_id"])  # a point's row: its set's run
    ride_along = pd.concat([summary[RIDE_ALONG].assign(control=None, level=None), table[RIDE_ALONG]], ignore_index=True)
    return pd.concat([frame, ride_along.rename(columns={"metric": "source_metric"})], axis=1)


def _write(stage: StageRun, request: Request, table: pd.DataFrame) -> dict:
    csv = stage.dir / VALIDATION
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    metrics = write_table(
        metrics_rows(table, request),
        stage.dir / METRICS,
        "metrics",
        producer=PRODUCER,
        run_id=request.run_id,
        extra={"plan": str(request.plan)},
    )
    return {"validation": csv, "metrics": metrics}


def summary_lines(table: pd.DataFrame) -> list[str]:
    """One line per relation, failures first: verdict, relation, reason."""
    return [f"{r.verdict:12s} {r.relation}: {r.reason}" for r in table.drop_duplicates("relation").itertuples()]
