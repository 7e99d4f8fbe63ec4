"""The report-scorer axis on the real OpenI reports of the installed torchxrayvision wheel: the four controls, then
chexbench-llava-report score and judge: BLEU and ROUGE-L highest on the references beyond their CIs."""

from __future__ import annotations

import pandas as pd
import pytest
from chexbench_validate import openi
from chexbench_validate.axes.reports import CONTROLS, paraphrase
from chexbench_validate.cli import main
from click.testing import CliRunner


@pytest.fixture(scope="module")
def reports():
    return openi.read_reports()


def test_the_wheel_holds_the_openi_reports(reports):
    assert len(reports) == 3955 and reports["report_id"].is_unique
    with_findings = reports[reports["findings"] != ""]
    assert len(with_findings) > 2500
    assert with_findings["findings"].str.contains("pneumothorax", case=False).sum() > 500


def test_a_paraphrase_keeps_the_findings_in_other_words():
    text = "Heart size is normal. There is no pleural effusion. The lungs are clear."
    assert paraphrase(text) == "No pleural fluid. Both lungs are clear. The heart is of normal size."
    assert paraphrase("Single sentence without a stock phrase.") == "Single sentence without a stock phrase."


def test_a_missing_archive_is_one_line(tmp_path):
    broken = tmp_path / "NLMCXR_reports.tgz"
    broken.write_bytes(b"not a tar")
    with pytest.raises(Exception, match="cannot be read as the OpenI report archive"):
        openi.read_reports(broken)


def test_controls_score_as_expected_through_llava_report(real_pool, tmp_path, reports):
    from chexbench_llava_report.cli import main as llava_report

    prompts, root = real_pool
    out, results = tmp_path / "sets", tmp_path / "Results"
    CliRunner().invoke(main, ["split", "--pool-prompts", str(prompts), "--out", str(out)])
    result = CliRunner().invoke(
        main,
        ["build", "reports", "--pool-prompts", str(prompts), "--pool-root", str(root), "--out", str(out), "-n", "60"],
    )
    assert result.exit_code == 0, result.output
    tables = {c: pd.read_parquet(out / f"reports-{c}" / "predictions.parquet") for c in CONTROLS}
    refs = tables["references"]
    assert len(refs) == 60 and set(refs["prompt_id"]) <= set(reports["report_id"])
    for table in tables.values():
        assert table["prompt_id"].tolist() == refs["prompt_id"].tolist()
        assert table["reference"].tolist() == refs["reference"].tolist()
    assert (tables["references"]["generated"] == refs["reference"]).all()
    assert (tables["other"]["generated"] != refs["reference"]).all()
    assert (tables["empty"]["generated"] == "").all()
    assert (tables["paraphrase"]["generated"] != refs["reference"]).mean() > 0.8

    args = [
        "score",
        "--results",
        results,
        "--model",
        "demo",
        "--run-id",
        "validate-reports",
        "--bootstrap",
        "100",
        "--device",
        "cpu",
    ]
    for control in CONTROLS:
        args += ["--predictions", f"reports-{control}={out / f'reports-{control}' / 'predictions.parquet'}"]
    result = CliRunner().invoke(llava_report, [str(a) for a in args])
    assert result.exit_code == 0, result.output

    result = CliRunner().invoke(
        main, ["judge", "--results", str(results), "--model", "demo", "--plan", str(out / "plan.csv"), "--strict"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(results / "demo" / "validate" / "validate" / "validation.csv", keep_default_na=False)
    verdicts = table.drop_duplicates("relation").set_index("relation")["verdict"].to_dict()
    # without CheXbert weights its rows say skipped: those relations are left out, not judged
    assert verdicts == {"BLEU-1-references": "pass", "BLEU-4-references": "pass", "ROUGE-L-references": "pass"}
    bleu = table[table["relation"] == "BLEU-4-references"].set_index("control")["value"]
    assert bleu["references"] == pytest.approx(100) and bleu["empty"] == 0 and bleu["paraphrase"] > bleu["other"]
