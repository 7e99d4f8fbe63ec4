"""The utility relations judged on finished classify runs as `make validate` writes them (several training seeds per
set): they read the mean-over-seeds row, whose two-level CI holds the seed-to-seed variation, not one seed's row;
absent twins that secretly carry the label's signal fail them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from chexbench_common.rundir import StageRun
from chexbench_schema import write_table
from chexbench_validate.cli import EXIT_RELATION_FAILED, main
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]
METRIC = "auc_Support Devices"
RELATIONS = ("utility-auroc-absent-chance", "utility-auroc-order")
# per control: each seed's AUROC with its patient-bootstrap CI, and the mean over seeds with its two-level CI. An
# untaught classifier's seeds scatter on both sides of 0.5 (each seed's CI leaves 0.5 out); their mean holds it.
INTACT = ([0.86, 0.81, 0.88, 0.83, 0.85], (0.84, 0.76, 0.92))
ABSENT = ([0.20, 0.74, 0.31, 0.80, 0.45], (0.50, 0.30, 0.70))
REVERSED = ([0.00, 0.02, 0.01, 0.00, 0.03], (0.012, 0.0, 0.04))


def classify_rows(seeds: list[float], mean: tuple[float, float, float], run_id: str) -> pd.DataFrame:
    """classify's rows of the label: one per seed (`all_synthetic/seed<N>`, a +-0.15 patient CI) and the mean."""
    rows = [(f"all_synthetic/seed{s}", v, max(0.0, v - 0.15), min(1.0, v + 0.15), "") for s, v in enumerate(seeds)]
    rows.append(("all_synthetic", *mean, f"mean over {len(seeds)} seeds"))
    frame = pd.DataFrame(rows, columns=["subset", "value", "ci_low", "ci_high", "note"])
    return frame.assign(
        run_id=run_id, model="demo", stage="classify", metric=METRIC, extractor=None, n_real=56, n_synth=88
    )


@pytest.fixture
def utility(tmp_path):
    """Write the three utility sets' classify runs and their plan; returns (results, plan)."""

    def make(series: dict[str, tuple]):
        results, sets = tmp_path / "Results", tmp_path / "sets"
        sets.mkdir(exist_ok=True)
        plan = []
        for level, (control, (seeds, mean)) in enumerate(series.items()):
            run_id = f"validate-utility-{control}"
            plan.append((f"utility-{control}", "utility", control, level, control, "", run_id, ""))
            run = StageRun(results, "demo", run_id, "classify", tool_version="test")
            run.start({}, {})
            table = classify_rows(seeds, mean, run_id)
            run.finish({"metrics": write_table(table, run.dir / "metrics.parquet", "metrics", producer="test")})
        columns = ["set_id", "axis", "control", "level", "level_label", "strength", "run_id", "note"]
        pd.DataFrame(plan, columns=columns).to_csv(sets / "plan.csv", index=False)
        return results, sets / "plan.csv"

    return make


def judge(results, plan):
    args = ["judge", "--results", str(results), "--model", "demo", "--plan", str(plan), "--strict", "--force"]
    return CliRunner().invoke(main, args)


def judged(results) -> pd.DataFrame:
    table = pd.read_csv(results / "demo" / "validate" / "validate" / "validation.csv", keep_default_na=False)
    return table[table["relation"].isin(RELATIONS)]


def test_the_mean_over_seeds_holds_chance_and_keeps_the_order(utility):
    results, plan = utility({"intact": INTACT, "absent": ABSENT, "reversed": REVERSED})
    result = judge(results, plan)
    assert result.exit_code == 0, result.output
    table = judged(results)
    assert dict(zip(table["relation"], table["verdict"], strict=False)) == dict.fromkeys(RELATIONS, "pass")
    absent = table[(table["relation"] == RELATIONS[0]) & (table["control"] == "absent")].iloc[0]
    assert (absent["value"], absent["ci_low"], absent["ci_high"]) == ABSENT[1]  # the mean's row, not seed 0's 0.20


def test_absent_twins_that_carry_the_signal_fail(utility):
    leaky = ([v - 0.02 for v in INTACT[0]], (0.82, 0.74, 0.90))  # as intact: the square still marks the label
    results, plan = utility({"intact": INTACT, "absent": leaky, "reversed": REVERSED})
    result = judge(results, plan)
    assert result.exit_code == EXIT_RELATION_FAILED
    table = judged(results).drop_duplicates("relation")
    assert dict(zip(table["relation"], table["verdict"], strict=True)) == {
        "utility-auroc-absent-chance": "fail",
        "utility-auroc-order": "underpowered",  # 0.84 above 0.82, inside the CIs: never a pass
    }


def test_absent_twins_that_reverse_the_signal_fail(utility):
    results, plan = utility({"intact": INTACT, "absent": REVERSED, "reversed": REVERSED})
    assert judge(results, plan).exit_code == EXIT_RELATION_FAILED
    table = judged(results).drop_duplicates("relation")
    assert set(table["verdict"]) == {"fail"}


def test_make_validate_trains_each_utility_set_with_several_seeds(tmp_path):
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", "validate-utility", f"RESULTS={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "--setting all_synthetic --seeds 10 " in out.stdout
    assert "OMP_NUM_THREADS=1 .venv/bin/chexbench-classify run" in out.stdout  # one thread: a second only spins
