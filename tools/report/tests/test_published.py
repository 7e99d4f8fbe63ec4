"""CheXGenBench's published values beside a run's: the package data and its source, which runs are compared (registry
models, the SynthCheX-75K alias, the demo marked not comparable), and on runs with known values the difference and
whether the published value lies in the run's CI, in report.json, report.html and the leaderboard."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from chexbench_report import published
from chexbench_report.collect import load_run
from chexbench_schema import CHEXPERT_LABELS, write_table
from report_world import POSITIVE, build_run, run_args

REPO_ROOT = Path(__file__).resolve().parents[3]
# CheXGenBench's published values for Sana (0.6B), as printed in its README's table images
SANA_FID, SANA_PRECISION, SANA_ALIGNMENT, SANA_REID = 54.225, 0.674, 0.695, 0.551


def _report(report_cli, results, model: str, run_id: str = "r") -> dict:
    result = report_cli(*run_args(results, model, run_id))
    assert result.exit_code == 0, result.output
    return json.loads((results / model / run_id / "report" / "report.json").read_text())


def _block(results, model: str, run_id: str = "r") -> dict:
    """The comparison block as the report builds it, without rendering the whole page."""
    return published.comparison(load_run(results, model, run_id))


def _rows(block: dict, table: str) -> dict:
    (found,) = [t for t in block["tables"] if t["name"] == table]
    return {(r["metric"], r["subset"]): r for r in found["rows"]}


def test_the_published_tables_ship_with_their_source_and_name_registry_models():
    src = published.sources()
    assert src["source"]["arxiv"] == "2505.10496" and src["source"]["url"].endswith("2505.10496")
    generators = set(yaml.safe_load((REPO_ROOT / "assets/models.yml").read_text())["generators"])
    for name in published.TABLES:
        frame = published.table(name)
        assert set(frame.index) <= generators, f"{name}: models not in the registry: {set(frame.index) - generators}"
        assert len(frame) == 11 and src["tables"][name]["protocol"] and src["tables"][name]["image"]
        values = frame[[q.column for q in published.QUANTITIES if q.table == name] or list(CHEXPERT_LABELS)]
        assert values.map(float).notna().all().all()  # every compared cell a number as printed
    assert list(published.table("conditional").columns) == list(CHEXPERT_LABELS)
    wanted = {q.column for q in published.QUANTITIES}
    have = set(published.table("fidelity").columns) | set(published.table("privacy").columns)
    assert wanted <= have
    assert {a["model"] for a in src["aliases"].values()} <= generators


def test_a_run_with_known_values_gets_the_difference_and_whether_the_published_value_is_in_its_ci(report_cli, results):
    # FID (RadDino) 50 with CI [45, 55] holds Sana's published 54.225; precision 0.6 [0.5, 0.7] holds 0.674;
    # alignment 0.4 [0.35, 0.45] does not hold 0.695; re-ID 0.51 [0.5, 0.52] does not hold 0.551
    run = build_run(results, model="sana", fid=(50.0, 45.0, 55.0))
    block = _report(report_cli, results, "sana")["published"]
    assert block["published_model"] == "sana" and block["comparable"] is True and block["mark"] is None
    fidelity = _rows(block, "fidelity")
    fid = fidelity[("FID (RadDino)", "all")]
    assert fid["published"] == SANA_FID and fid["value"] == 50.0
    assert fid["difference"] == pytest.approx(50.0 - SANA_FID) and fid["in_ci"] is True
    assert fid["verdict"] == "in the run's CI" and fid["published_text"] == "54.225"
    precision = fidelity[("Precision (RadDino)", "all")]
    assert precision["difference"] == pytest.approx(0.6 - SANA_PRECISION) and precision["in_ci"] is True
    alignment = fidelity[("Alignment (BioViL-T)", "all")]
    assert alignment["difference"] == pytest.approx(0.4 - SANA_ALIGNMENT) and alignment["in_ci"] is False
    kid = fidelity[("KID (RadDino)", "all")]  # a value without a CI: a difference, no verdict
    assert kid["difference"] == pytest.approx(0.02 - 0.016) and kid["in_ci"] is None
    assert kid["verdict"] == "no CI in this run"
    assert fidelity[("Recall (RadDino)", "all")]["verdict"] == "not in this run"
    privacy = _rows(block, "privacy")
    reid = privacy[("Avg. Re-ID Score", "all")]
    assert reid["difference"] == pytest.approx(0.51 - SANA_REID) and reid["in_ci"] is False
    assert reid["verdict"] == "outside the run's CI"
    # per pathology: each label's FID (RadDino) row of the run against the published cell of that label
    frame = run.metrics["fidelity"]
    conditional = _rows(block, "conditional")
    assert len(conditional) == 14
    for label in POSITIVE:
        mine = frame[(frame["metric"] == "FID") & (frame["extractor"] == "raddino") & (frame["subset"] == label)]
        row, cell = conditional[("FID (RadDino)", label)], float(published.table("conditional").loc["sana", label])
        assert row["published"] == cell and row["difference"] == pytest.approx(mine["value"].item() - cell)
        assert row["in_ci"] is (mine["ci_low"].item() <= cell <= mine["ci_high"].item())
    assert conditional[("FID (RadDino)", "Fracture")]["verdict"] == "not in this run"
    assert conditional[("FID (RadDino)", "Pleural Other")]["verdict"].startswith("no value in this run")
    # one line on what differs in the protocol, with what this run rests on
    (protocol,) = [t["protocol"] for t in block["tables"] if t["name"] == "fidelity"]
    assert "one run per model, no CI" in protocol
    html = (results / "sana/r/report/report.html").read_text()
    assert '<section id="published">' in html and "arXiv 2505.10496" in html
    assert 'data-metric="FID (RadDino)" data-subset="all" data-in-ci="true"' in html
    assert 'data-metric="Alignment (BioViL-T)" data-subset="all" data-in-ci="false"' in html
    assert "demo: not comparable" not in html


def test_a_published_value_outside_the_ci_and_on_its_bound():
    row = {"value": 60.0, "ci_low": 58.0, "ci_high": 62.0, "n_real": 100, "n_synth": 100}
    outside = published.compare_value(SANA_FID, row)
    assert outside["in_ci"] is False and outside["difference"] == pytest.approx(60.0 - SANA_FID)
    assert published.compare_value(58.0, row)["in_ci"] is True  # bounds included
    assert published.compare_value(58.0, row, judged=False)["in_ci"] is None
    empty = published.compare_value(1.0, {"value": math.nan, "ci_low": 0.0, "ci_high": 2.0})
    assert empty["value"] is None and empty["difference"] is None and empty["in_ci"] is None
    assert empty["verdict"].startswith("no value in this run")
    assert published.compare_value(1.0, None)["verdict"] == "not in this run"


def test_the_pixel_distance_is_shown_but_not_judged(results):
    build_run(results, model="sana")
    frame_path = results / "sana/r/privacy/metrics.parquet"
    frame = pd.read_parquet(frame_path)
    extra = {"run_id": "r", "model": "sana", "stage": "privacy", "metric": "pixel_distance_mean", "subset": "all"}
    extra |= {"extractor": "pixel", "value": 20.0}
    extra |= {"ci_low": 10.0, "ci_high": 200.0}
    write_table(pd.concat([frame, pd.DataFrame([extra])]), frame_path, "metrics", producer="test", run_id="r")
    row = _rows(_block(results, "sana"), "privacy")[("Avg. Pixel Distance", "all")]
    assert row["difference"] == pytest.approx(20.0 - 162.901) and row["in_ci"] is None
    assert row["verdict"].startswith("not comparable: the published value is uint8 wrap-around noise")


def test_the_demo_compares_with_its_generator_marked_not_comparable(report_cli, results):
    build_run(results, model="demo")
    manifest_path = results / "demo/r/generate/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["params"]["model"] = "sana"  # what chexbench-generate records for the demo's tiny Sana
    manifest_path.write_text(json.dumps(manifest))
    block = _report(report_cli, results, "demo")["published"]
    assert block["published_model"] == "sana" and block["comparable"] is False
    assert block["mark"] == "demo: not comparable"
    assert _rows(block, "fidelity")[("FID (RadDino)", "all")]["difference"] == pytest.approx(50.0 - SANA_FID)
    html = (results / "demo/r/report/report.html").read_text()
    assert 'data-comparable="false"><span class="badge failed">demo: not comparable</span>' in html


def test_synthchex_images_compare_with_sana_as_an_indication(results):
    build_run(results, model="SynthCheX-75K")
    block = _block(results, "SynthCheX-75K")
    assert block["published_model"] == "sana" and block["comparable"] is True
    assert "an indication" in block["mark"] and "TRAIN prompts" in block["why"]
    assert _rows(block, "fidelity")[("FID (RadDino)", "all")]["in_ci"] is True


def test_a_model_without_published_values_says_so(results):
    build_run(results, model="m")
    block = _block(results, "m")
    assert block["published_model"] is None and block["tables"] == []
    assert "CheXGenBench published no values for 'm'" in block["note"] and "sana" in block["note"]


def test_the_leaderboard_lists_each_registry_run_beside_the_published_values(report_cli, results, tmp_path):
    build_run(results, model="sana", run_id="near", fid=(50.0, 45.0, 55.0))
    build_run(results, model="sana", run_id="far", fid=(60.0, 58.0, 62.0))
    build_run(results, model="m", run_id="other")
    out = tmp_path / "board"
    result = report_cli("leaderboard", "--results", results, "--out", out)
    assert result.exit_code == 0, result.output
    board = pd.read_csv(out / "leaderboard_published.csv")
    assert set(board["Model"]) == {"sana"}  # m: nothing published
    fid = board[(board["Metric"] == "FID (RadDino)") & board["Pathology"].isna()].set_index("Run ID")
    assert fid.loc["near", "Published"] == SANA_FID and fid.loc["far", "Published"] == SANA_FID
    assert fid.loc["near", "Difference"] == pytest.approx(50.0 - SANA_FID)
    assert fid.loc["far", "Difference"] == pytest.approx(60.0 - SANA_FID)
    assert bool(fid.loc["near", "Published in CI"]) is True and bool(fid.loc["far", "Published in CI"]) is False
    assert set(board[board["Table"] == "conditional"]["Pathology"]) == set(CHEXPERT_LABELS)
    html = (out / "leaderboard.html").read_text()
    assert '<section id="published">' in html and "54.225" in html and "one run per model, no CI" in html


def test_the_report_is_made_again_when_the_published_data_changes(report_cli, results, tmp_path, monkeypatch):
    build_run(results, model="sana")
    assert _report(report_cli, results, "sana")["published"]["tables"][0]["rows"][0]["published"] == SANA_FID
    again = report_cli(*run_args(results, "sana"))
    assert again.exit_code == 0 and "up to date" in again.stderr
    # the same package data with one cell corrected: the report is redone and shows the new value
    data = tmp_path / "published"
    data.mkdir()
    for name in ["sources.json", *(published.sources()["tables"][t]["file"] for t in published.TABLES)]:
        text = published._data(name).read_text()
        (data / name).write_text(text.replace("54.225", "54.226") if name.endswith("fidelity_v1.csv") else text)
    monkeypatch.setattr(published, "_data", lambda name: data / name)
    published.sources.cache_clear()
    published.table.cache_clear()
    try:
        redo = _report(report_cli, results, "sana")
    finally:
        published.sources.cache_clear()
        published.table.cache_clear()
    assert redo["published"]["tables"][0]["rows"][0]["published"] == 54.226
