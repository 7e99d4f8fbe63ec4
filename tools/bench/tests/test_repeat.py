"""compare-runs: two results roots of the same commands must hold equal tables; any difference is named and fails."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_bench.cli import main
from chexbench_bench.repeat import EXCLUDED_FIELDS, compare_frames, compare_json, same
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]
REPEATS = ("first", "second")


def _metrics(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": "default",
            "model": "demo",
            "stage": "fidelity",
            "metric": list(values),
            "subset": "all",
            "extractor": "inception",
            "value": list(values.values()),
            "ci_low": np.nan,
            "ci_high": np.nan,
            "note": None,
        }
    )


@pytest.fixture
def roots(tmp_path):
    """Two results roots with the same run: a fidelity stage (metrics, leaderboard CSV, manifest), an embed stage
    (vectors) and a report (JSON with a provenance time)."""
    first = tmp_path / "first"
    run = first / "demo" / "default"
    for stage in ("fidelity", "embed", "report"):
        (run / stage).mkdir(parents=True)
        (run / stage / "manifest.json").write_text(json.dumps({"status": "success", "started": "t0", "host": "a"}))
        (run / stage / "_SUCCESS").write_text("")
    _metrics({"FID": 12.5, "KID": 0.25}).to_parquet(run / "fidelity" / "metrics.parquet")
    pd.DataFrame({"Model": ["demo"], "FID": [12.5], "Extra Info": ["x"]}).to_csv(run / "fidelity" / "leaderboard.csv")
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    pd.DataFrame({"id": ["a", "b", "c"], "vector": list(vectors)}).to_parquet(run / "embed" / "synthetic.parquet")
    stages = [
        {"stage": "fidelity", "started": "t0", "seconds": 1.5, "inputs": {"real": "aa"}, "command": ".venv/bin/x"}
    ]
    report = {"headline": {"FID": 12.5}, "provenance": {"stages": stages}}
    (run / "report" / "report.json").write_text(json.dumps(report))
    second = tmp_path / "second"
    shutil.copytree(first, second)
    return first, second


def _compare(first, second):
    return CliRunner().invoke(main, ["compare-runs", str(first), str(second)])


def test_equal_runs_pass_with_one_line_per_stage_and_provenance_left_out(roots):
    first, second = roots
    run = second / "demo" / "default"
    # what legitimately changes between identical runs: manifests, wall-clock times, durations, host, and between
    # runners the program's path in each stage's command line
    (run / "fidelity" / "manifest.json").write_text(json.dumps({"status": "success", "started": "t9", "host": "b"}))
    report = json.loads((run / "report" / "report.json").read_text())
    report["provenance"]["stages"][0].update(
        started="t9", seconds=7.25, inputs={"real": "bb"}, command="/opt/venv/bin/x"
    )
    (run / "report" / "report.json").write_text(json.dumps(report))
    result = _compare(first, second)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.splitlines() == [
        "demo/default/embed: equal (1 tables, 6 values)",
        "demo/default/fidelity: equal (2 tables, 24 values)",
        "demo/default/report: equal (1 tables, 2 values)",
    ]
    assert "all 3 stage folders equal" in result.stderr and "manifest.json" in result.stderr


def test_a_metric_one_ulp_apart_fails_naming_the_metric_and_the_difference(roots):
    first, second = roots
    path = second / "demo" / "default" / "fidelity" / "metrics.parquet"
    _metrics({"FID": np.nextafter(12.5, 13.0), "KID": 0.25}).to_parquet(path)
    result = _compare(first, second)
    assert result.exit_code == 4
    lines = result.stdout.splitlines()
    assert lines[1].startswith("demo/default/fidelity: DIFFERS (1 of 24 values): metrics.parquet: ")
    assert "fidelity FID all inception value: 12.5 vs 12.5 (|Δ| 1.78e-15)" in lines[1]
    assert lines[0].endswith("equal (1 tables, 6 values)") and lines[2].endswith("equal (1 tables, 2 values)")
    assert "1 of 3 stage folders differ" in result.stderr and "demo/default/fidelity" in result.stderr


def test_vectors_report_values_missing_tables_and_row_order_are_differences(roots):
    first, second = roots
    run = second / "demo" / "default"
    frame = pd.read_parquet(run / "embed" / "synthetic.parquet")
    frame.at[1, "vector"] = frame.at[1, "vector"] + np.float32(0.5)
    frame.to_parquet(run / "embed" / "synthetic.parquet")
    (run / "report" / "report.json").write_text(
        json.dumps({"headline": {"FID": 13.0}, "provenance": {"stages": [{"stage": "fidelity"}]}})
    )
    (run / "fidelity" / "leaderboard.csv").unlink()
    _metrics({"KID": 0.25, "FID": 12.5}).to_parquet(run / "fidelity" / "metrics.parquet")
    result = _compare(first, second)
    assert result.exit_code == 4
    embed, fidelity, report = result.stdout.splitlines()
    assert "synthetic.parquet: row 1 vector: [4 numbers] vs [4 numbers] (|Δ| 0.5)" in embed
    assert "leaderboard.csv: only in the first run" in fidelity and "metrics.parquet: row order" in fidelity
    assert "report.json: headline.FID: 12.5 vs 13 (|Δ| 0.5)" in report


def test_a_stage_folder_on_one_side_only_differs(roots):
    first, second = roots
    shutil.rmtree(second / "demo" / "default" / "embed")
    result = _compare(first, second)
    assert result.exit_code == 4
    assert "demo/default/embed: DIFFERS (tables): only in the first run" in result.stdout


def test_empty_roots_are_bad_input(tmp_path):
    result = _compare(tmp_path, tmp_path)
    assert result.exit_code == 3 and "no stage folder" in result.stderr


def test_exact_equality_rules():
    assert same(float("nan"), float("nan")) and same(None, None) and not same(None, 0.0)
    assert not same(0.1 + 0.2, 0.3) and same(np.float32(0.5), 0.5)
    assert same(np.array([1.0, np.nan]), np.array([1.0, np.nan])) and not same(np.ones(2), np.ones(3))
    # an excluded column may differ; another column may not
    a = pd.DataFrame({"metric": ["FID"], "value": [1.0], "seconds": [3.0]})
    assert compare_frames(a, a.assign(seconds=9.0), "t.csv") == (2, [])
    assert "seconds" in EXCLUDED_FIELDS
    assert len(compare_frames(a, a.assign(value=1.5), "t.csv")[1]) == 1
    # an excluded path is excluded only in its own file and place
    one, two = ({"provenance": {"stages": [{"inputs": {"real": h}}]}} for h in ("aa", "bb"))
    assert compare_json(one, two, "run/report/report.json") == (0, [])
    assert len(compare_json(one, two, "run/other.json")[1]) == 1
    assert len(compare_json({"inputs": {"real": "aa"}}, {"inputs": {"real": "bb"}}, "report.json")[1]) == 1


def test_make_bench_repeat_runs_bench_twice_into_fresh_roots_and_caches_then_compares(tmp_path):
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", "bench-repeat", f"REPEAT_DIR={tmp_path}/rep"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    rep = f"{tmp_path}/rep"
    assert f"rm -rf {rep}/first {rep}/first-cache {rep}/second {rep}/second-cache" in text
    runs = [text.index(f"bench leaderboard RESULTS={rep}/{n} CHEXBENCH_CACHE_DIR={rep}/{n}-cache") for n in REPEATS]
    assert runs == sorted(runs)
    # the dry run shows both inner `make bench` chains: each writes only into its own root
    assert text.count(f"chexbench-bench demo-inputs --results {rep}/first ") == 1
    assert text.count(f"chexbench-bench demo-inputs --results {rep}/second ") == 1
    assert text.rindex(f"chexbench-bench compare-runs {rep}/first {rep}/second --model demo") > runs[-1]


def test_a_difference_from_a_changed_command_or_code_is_named_as_such(roots):
    first, second = roots
    for root, params, sha in ((first, {"k": 10}, "aa"), (second, {"k": 11}, "bb")):
        inputs = {
            "prompts": {"path": f"{root}/demo/default/inputs/prompts.parquet", "sha256": "aa"},
            "embed_manifest": {"path": f"{root}/demo/default/embed/manifest.json", "sha256": sha},  # times: differs
            "own": {"path": f"{root}/demo/default/fidelity/part/x.parquet", "sha256": sha},  # its own product
        }
        manifest = {"status": "success", "tool_version": "0.1.0", "params": params, "inputs": inputs}
        (root / "demo" / "default" / "fidelity" / "manifest.json").write_text(json.dumps(manifest))
    _metrics({"FID": 12.0, "KID": 0.25}).to_parquet(second / "demo" / "default" / "fidelity" / "metrics.parquet")
    line = _compare(first, second).stdout.splitlines()[1]
    assert line.endswith(
        "[not the same inputs or settings: the manifests differ in params.k]"
    )  # the roots' own paths do not count
    _metrics({"FID": 12.5, "KID": 0.25}).to_parquet(second / "demo" / "default" / "fidelity" / "metrics.parquet")
    assert _compare(first, second).exit_code == 0  # other parameters with equal tables: equal


def test_paths_under_each_root_compare_as_the_same_place(roots):
    first, second = roots
    for root in (first, second):
        files = [f"{root}/demo/default/generate/images/a.png", f"{root}x/elsewhere.png"]
        pd.DataFrame({"file": files, "score": [0.5, 0.25]}).to_csv(root / "demo" / "default" / "report" / "scores.csv")
        pd.DataFrame({"file": files}).to_parquet(root / "demo" / "default" / "report" / "files.parquet")
        document = {"run_dir": f"{root}/demo/default", "command": f"run --results {root} --model demo"}
        (root / "demo" / "default" / "report" / "paths.json").write_text(json.dumps(document))
    result = _compare(first, second)
    # under the root: the same place; a sibling folder whose name merely starts like the root: a real difference
    assert result.exit_code == 4
    report = result.stdout.splitlines()[2]
    assert report.startswith("demo/default/report: DIFFERS (2 of 12 values)")
    assert "files.parquet: row 1 file" in report and "scores.csv: row 1 file" in report and "paths.json" not in report
