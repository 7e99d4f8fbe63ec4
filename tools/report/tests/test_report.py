"""chexbench-report run: the report's data against the tables it was built from, computed here independently;
partial runs, failed stages, empty and missing folders; the lifecycle (skip, redo, failure record)."""

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_common.rundir import StageRun, is_finished
from chexbench_schema import CHEXPERT_LABELS, write_table
from click.testing import CliRunner
from report_world import CT_NOTE, POSITIVE, build_run, report_json, run_args


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One full run and its report, shared by the tests that only read them: (run, results, CLI result)."""
    from chexbench_report.cli import main

    results = tmp_path_factory.mktemp("rendered") / "Results"
    run = build_run(results)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHEXBENCH_PROGRESS", "none")
        result = CliRunner().invoke(main, run_args(results))
    return run, results, result


def test_report_holds_what_the_tables_say(rendered):
    full_run, results, result = rendered
    assert result.exit_code == 0, result.output
    assert str(full_run.dir / "report" / "report.html") in result.stdout
    assert is_finished(full_run.dir / "report")
    report = report_json(full_run)
    # headline: fidelity's `all` rows except the *_std ones, with their values and CIs as written
    fidelity = full_run.metrics["fidelity"]
    expected = fidelity[(fidelity["subset"] == "all") & ~fidelity["metric"].str.endswith("_std")]
    shown = {(r["metric"], r["extractor"]): (r["value"], r["ci_low"]) for r in report["headline"]["fidelity"]}
    assert shown == {
        (r.metric, r.extractor): (r.value, None if pd.isna(r.ci_low) else r.ci_low) for r in expected.itertuples()
    }
    # per pathology: fidelity's chosen metrics (not precision), align, classify's all_synthetic AUROC
    titles = [c["title"] for c in report["pathology"]]
    assert titles == [
        "fidelity: FD_DINOv2 (FID on dinov2)",
        "fidelity: FID (raddino)",
        "fidelity: KID (raddino)",
        "fidelity: CMMD (clip)",
        "fidelity: vendi (raddino)",
        "fidelity: C_T (inception)",
        "align: alignment (biovil-t)",
        "classify: AUROC per class, trained all_synthetic",
    ]
    fid_points = {p["label"]: p["value"] for p in report["pathology"][1]["points"]}
    labelled = fidelity[
        (fidelity["metric"] == "FID") & (fidelity["extractor"] == "raddino") & (fidelity["subset"] != "all")
    ]
    assert fid_points == {r.subset: (None if pd.isna(r.value) else r.value) for r in labelled.itertuples()}
    # the stage statuses, llava-report listed as not run
    assert {s["stage"]: s["status"] for s in report["stages"]}["llava-report"] == "not run"
    assert all(s["status"] == "success" for s in report["stages"] if s["stage"] != "llava-report")


def test_each_fidelity_metric_is_charted_per_pathology_with_its_ci_as_written(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    fidelity = full_run.metrics["fidelity"]
    charts = {(c["metric"], c["extractor"]): c for c in report_json(full_run)["pathology"] if c["stage"] == "fidelity"}
    for (metric, extractor), chart in charts.items():
        rows = fidelity[(fidelity["metric"] == metric) & (fidelity["extractor"] == extractor)]
        rows = rows[rows["subset"] != "all"].set_index("subset")
        assert [p["label"] for p in chart["points"]] == [s for s in CHEXPERT_LABELS if s in rows.index], metric
        for p in chart["points"]:
            row = rows.loc[p["label"]]
            expected = [None if pd.isna(row[k]) else row[k] for k in ("value", "ci_low", "ci_high")]
            assert [p["value"], p["ci_low"], p["ci_high"]] == expected, (metric, p["label"])
    # Vendi carries the real set's Vendi of the same label as its ceiling; vendi_real is not a chart of its own
    vendi, real = charts["vendi", "raddino"], fidelity[fidelity["metric"] == "vendi_real"].set_index("subset")
    assert vendi["reference"] == "real set (the ceiling)" and ("vendi_real", "raddino") not in charts
    assert {p["label"]: p["reference"] for p in vendi["points"]} == {
        p["label"]: None if pd.isna(real.at[p["label"], "value"]) else real.at[p["label"], "value"]
        for p in vendi["points"]
    }
    # a metric no label has a value of is its note, not an empty chart
    assert charts["C_T", "inception"]["empty_note"] == CT_NOTE
    assert all(c["empty_note"] is None for key, c in charts.items() if key != ("C_T", "inception"))
    html = (full_run.dir / "report" / "report.html").read_text()
    section = html[html.index('<section id="pathology">') : html.index('<section id="samples">')]
    for i, chart in enumerate(report_json(full_run)["pathology"]):
        figure = re.search(rf'<figure class="chart" data-chart="pathology-{i}".*?</figure>', section, re.S).group(0)
        assert chart["title"] in figure
        bars = len(re.findall(rf'id="pathology-{i}-bar-', figure))
        assert bars == sum(p["value"] is not None for p in chart["points"]), chart["title"]
        assert len(re.findall(rf'id="pathology-{i}-ci-', figure)) == sum(
            p["ci_low"] is not None for p in chart["points"]
        )
        refs = sum(p.get("reference") is not None for p in chart["points"])
        assert len(re.findall(rf'id="pathology-{i}-ref-', figure)) == refs, chart["title"]
        if chart["empty_note"] is not None:
            assert "<svg" not in figure and f"No value for any label: {chart['empty_note']}" in figure


def test_classification_shows_each_settings_selection_rule_and_chosen_epoch(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    classify = full_run.metrics["classify"]
    expected = classify[classify["metric"] == "selected_epoch"]
    shown = report_json(full_run)["classification"]["selection"]
    assert [(r["subset"], r["value"], r["note"]) for r in shown] == [
        (r.subset, r.value, r.note) for r in expected.itertuples()
    ]
    html = (full_run.dir / "report" / "report.html").read_text()
    section = html[html.index('<section id="classification">') : html.index('<section id="embedding">')]
    assert "Checkpoint selection" in section
    for row in expected.itertuples():  # each setting and seed, its epoch and its rule
        assert f'<td>{row.subset}</td><td class="num">{int(row.value)}</td><td class="note">{row.note}</td>' in section


def test_sample_grid_pairs_each_label_with_its_own_images(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    prompts = pd.read_parquet(full_run.prompts)
    rows = {row["label"]: row for row in report_json(full_run)["samples"]["rows"]}
    assert set(rows) == set(POSITIVE)
    for label, row in rows.items():
        positive = set(prompts.loc[prompts[label] == 1, "prompt_id"])
        assert {img["id"].removesuffix("-0") for img in row["synthetic"]} <= positive
        assert {img["id"] for img in row["real"]} <= positive
        assert len(row["synthetic"]) == min(4, len(positive)) and len(row["real"]) == min(4, len(positive))
        assert all(img["file"].endswith(".png") for img in row["synthetic"] + row["real"])


def test_outliers_are_the_synthetic_images_farthest_from_any_real_one(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    real_ids, real = full_run.embeddings["real"]
    synth_ids, synth = full_run.embeddings["synthetic"]
    distances = np.sqrt(((synth[:, None, :].astype(float) - real[None, :, :]) ** 2).sum(-1))  # brute force
    nearest = distances.min(axis=1)
    order = np.argsort(-nearest)[:8]
    outliers = report_json(full_run)["embedding"]["outliers"]
    assert [r["image_id"] for r in outliers["rows"]] == [synth_ids[i] for i in order]
    assert np.allclose([r["distance"] for r in outliers["rows"]], nearest[order], rtol=1e-5)
    assert [r["nearest_real"] for r in outliers["rows"]] == [real_ids[distances[i].argmin()] for i in order]
    assert np.isclose(outliers["median_distance"], np.median(nearest), rtol=1e-5)


def test_provenance_hashes_are_those_of_the_files(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    provenance = report_json(full_run)["provenance"]
    assert provenance["prompts"]["sha256"] == hashlib.sha256(full_run.prompts.read_bytes()).hexdigest()
    file_digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in full_run.synth_files.values())
    assert provenance["images"] == {
        "count": len(file_digests),
        "sha256": hashlib.sha256("\n".join(file_digests).encode()).hexdigest(),
    }
    assert provenance["generator_weights"] == {"model_fingerprint": "f" * 64}
    stages = {s["stage"]: s for s in provenance["stages"]}
    assert stages["generate"]["seeds"] == {"settings.seed": 42}
    assert stages["fidelity"]["seconds"] is not None and stages["fidelity"]["seconds"] >= 0


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(tag, name, value) for name, value in attrs if name in ("src", "href", "srcset", "data")]


def test_page_is_one_self_contained_file(rendered):
    full_run, _, result = rendered
    assert result.exit_code == 0, result.output
    html = (full_run.dir / "report" / "report.html").read_text()
    parser = _Refs()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    for tag, name, value in parser.refs:
        assert value.startswith(("data:image/", "#")), (tag, name, value[:80])
    assert sum(1 for tag, _, v in parser.refs if tag == "img" and v.startswith("data:image/")) >= 20
    assert "url(http" not in html and "@import" not in html


def test_a_run_with_some_stages_lists_the_others_as_not_run(report_cli, results):
    run = build_run(results, stages=("generate", "embed", "fidelity"))
    result = report_cli(*run_args(results))
    assert result.exit_code == 0, result.output
    report = report_json(run)
    status = {s["stage"]: s["status"] for s in report["stages"]}
    assert [status[s] for s in ("align", "privacy", "classify")] == ["not run"] * 3
    assert report["privacy"] is None and report["classification"] is None
    assert [c["stage"] for c in report["pathology"]] == ["fidelity"] * 6
    html = (run.dir / "report" / "report.html").read_text()
    assert 'data-stage="privacy"><span class="badge not-run">not run</span>' in html


def test_a_failed_stage_is_shown_with_its_reason(report_cli, results):
    reason = "out of GPU memory at batch 3; rerun with --batch-size 4"
    run = build_run(results, failed={"privacy": reason})
    result = report_cli(*run_args(results))
    assert result.exit_code == 0, result.output
    report = report_json(run)
    privacy = next(s for s in report["stages"] if s["stage"] == "privacy")
    assert (privacy["status"], privacy["reason"]) == ("failed", reason)
    assert "privacy" not in report["headline"] and report["privacy"] is None
    html = (run.dir / "report" / "report.html").read_text()
    assert html.count(reason) >= 3  # headline, stages table, privacy section (and provenance)
    assert 'data-stage="privacy" data-status="failed"' in html


def test_an_empty_run_folder_is_one_error_line_and_writes_nothing(report_cli, results):
    (results / "m" / "r").mkdir(parents=True)
    result = report_cli(*run_args(results))
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no stage has run in this folder" in lines[0] and "make bench" in lines[0]
    assert "Traceback" not in result.output
    assert list((results / "m" / "r").iterdir()) == []


def test_a_missing_run_folder_is_one_error_line(report_cli, results):
    result = report_cli(*run_args(results, run_id="nope"))
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"chexbench-report: error: {results / 'm' / 'nope'}: no such run folder; check --results, --model and --run-id"
    ]
    assert not (results / "m" / "nope").exists()


def test_skips_when_nothing_changed_and_redoes_when_a_stage_ran_again(report_cli, results, full_run):
    assert report_cli(*run_args(results)).exit_code == 0
    again = report_cli(*run_args(results))
    assert again.exit_code == 0 and "up to date" in again.stderr
    # align runs again and now fails: the report is redone and shows it
    align = StageRun(results, "m", "r", "align", tool_version="0.1.0")
    align.start({"seed": 1}, {"prompts": full_run.prompts})
    align.fail("BioViL-T weights not found")
    redo = report_cli(*run_args(results))
    assert redo.exit_code == 0 and "up to date" not in redo.stderr
    status = {s["stage"]: (s["status"], s["reason"]) for s in report_json(full_run)["stages"]}
    assert status["align"] == ("failed", "BioViL-T weights not found")


def test_a_broken_metrics_table_fails_the_report_and_says_which(report_cli, results, full_run):
    assert report_cli(*run_args(results)).exit_code == 0
    (full_run.dir / "fidelity" / "metrics.parquet").write_bytes(b"not parquet")
    result = report_cli(*run_args(results))
    assert result.exit_code == 3
    assert "fidelity/metrics.parquet: cannot be read as parquet" in result.stderr
    assert not is_finished(full_run.dir / "report")  # the previous report no longer counts
    manifest = json.loads((full_run.dir / "report" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "metrics.parquet" in manifest["error"]


def test_out_copies_the_page(report_cli, results, full_run, tmp_path):
    out = tmp_path / "mail" / "report.html"
    assert report_cli(*run_args(results), "--out", out).exit_code == 0
    assert out.read_bytes() == (full_run.dir / "report" / "report.html").read_bytes()


def test_any_stage_with_a_metrics_table_is_shown_without_special_code(report_cli, results, full_run):
    stage = StageRun(results, "m", "r", "new-stage", tool_version="0.1.0")
    stage.start({}, {"prompts": full_run.prompts})
    rows = [{"metric": "BLEU-4", "subset": "all", "value": 0.12, "ci_low": 0.1, "ci_high": 0.14}]
    rows += [{"metric": "F1", "subset": label, "value": 0.5} for label in POSITIVE[:3]]
    frame = pd.DataFrame(rows).assign(run_id="r", model="m", stage="new-stage", extractor=None, n_real=5)
    frame = frame.assign(n_synth=None, note=None)
    write_table(frame, stage.dir / "metrics.parquet", "metrics", producer="test", run_id="r")
    stage.finish({"metrics": stage.dir / "metrics.parquet"})
    assert report_cli(*run_args(results)).exit_code == 0
    report = report_json(full_run)
    assert [(r["metric"], r["value"], r["ci_low"]) for r in report["headline"]["new-stage"]] == [("BLEU-4", 0.12, 0.1)]
    chart = next(c for c in report["pathology"] if c["stage"] == "new-stage")
    assert [(p["label"], p["value"]) for p in chart["points"]] == [(label, 0.5) for label in POSITIVE[:3]]
    assert len(report["metrics"]["new-stage"]) == 4
    html = (full_run.dir / "report" / "report.html").read_text()
    assert 'data-stage="new-stage" data-status="success"' in html and "BLEU-4" in html


def test_llava_report_headline_is_its_summary_metrics_per_setting(report_cli, results, full_run):
    stage = StageRun(results, "m", "r", "llava-report", tool_version="0.1.0")
    stage.start({}, {"prompts": full_run.prompts})
    metrics = ["BLEU-1", "BLEU-4", "ROUGE-L", "Micro-F1-14", "Macro-F1-14+", "F1-RadGraph"]
    subsets = ("zeroshot", "p100", "p10/seed0", "p10/seed1", "p10")  # p10: the mean over its two training seeds
    rows = [{"metric": m, "subset": s, "value": 0.1} for s in subsets for m in metrics]
    frame = pd.DataFrame(rows).assign(run_id="r", model="m", stage="llava-report", extractor=None, n_real=5)
    frame = frame.assign(ci_low=None, ci_high=None, n_synth=None, note=None)
    write_table(frame, stage.dir / "metrics.parquet", "metrics", producer="test", run_id="r")
    stage.finish({"metrics": stage.dir / "metrics.parquet"})
    assert report_cli(*run_args(results)).exit_code == 0
    shown = [(r["subset"], r["metric"]) for r in report_json(full_run)["headline"]["llava-report"]]
    headline = ["BLEU-1", "BLEU-4", "ROUGE-L", "Micro-F1-14", "F1-RadGraph"]  # the "+" variants stay in All metrics
    assert shown == [(s, m) for s in ("p10", "p100", "zeroshot") for m in headline]


def test_per_class_auroc_of_a_setting_run_with_several_seeds_comes_from_its_first_seed():
    from chexbench_report.summary import classify_auroc_series

    rows = [
        {"metric": "auc_macro", "subset": "all_synthetic", "value": 0.7},  # the mean over seeds: no per-class rows
        *({"metric": "auc_Edema", "subset": f"all_synthetic/seed{k}", "value": 0.6 + k / 10} for k in (1, 0)),
        {"metric": "auc_micro", "subset": "all_synthetic/seed0", "value": 0.65},
    ]
    metrics = pd.DataFrame(rows).assign(stage="classify", extractor=None, ci_low=None, ci_high=None)
    (chart,) = classify_auroc_series(metrics.assign(n_real=None, n_synth=None, note=None))
    assert chart["title"] == "classify: AUROC per class, trained all_synthetic (seed0 of several)"
    assert [(p["label"], p["value"]) for p in chart["points"]] == [("Edema", 0.6)]


def test_relative_paths_resolve_in_the_folder_the_stages_ran_in(report_cli, tmp_path, monkeypatch):
    """make bench records paths relative to the checkout; the report finds the pictures from any other folder."""
    monkeypatch.chdir(tmp_path)
    build_run(Path("Results"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = report_cli(*run_args(tmp_path / "Results"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "Results" / "m" / "r" / "report"
    report = json.loads((folder / "report.json").read_text())
    real = [img["file"] for row in report["samples"]["rows"] for img in row["real"]]
    assert real and all((folder / f).is_file() for f in real) and report["samples"]["notes"] == []
    assert all((folder / row["real_file"]).is_file() for row in report["embedding"]["outliers"]["rows"])
    # relative to the report's folder: the same wherever the results root lies (every runner writes the same)
    assert all(not Path(f).is_absolute() and f.startswith("../") for f in real)
    assert (folder / report["provenance"]["prompts"]["path"]).is_file()
    assert report["provenance"]["prompts"]["path"].startswith("../")
