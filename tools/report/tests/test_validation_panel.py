"""The validation panel of a `make validate` run: one small chart per relation (a point per ladder level or control,
CI whiskers), failures first, the verdict and its reason beside it; absent from other runs."""

from __future__ import annotations

import json
import re

import pandas as pd
from chexbench_common.rundir import StageRun
from chexbench_schema import write_table

COLUMNS = [
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
]


def _relation(name, metric, extractor, verdict, values, cis=True, controls=None):
    rows = []
    for level, value in enumerate(values):
        control = controls[level] if controls else ("original" if level == 0 else "blur")
        lo, hi = (value - 1, value + 1) if cis and value is not None else (None, None)
        rows.append(
            [
                "fidelity",
                name,
                metric,
                extractor,
                control,
                level,
                f"L{level}",
                f"s{level}",
                f"validate-s{level}",
                value,
                lo,
                hi,
                f"{metric} rises",
                "monotone_increasing",
                1.0,
                verdict,
                f"why {name}",
                "real: pinned",
                "pass",
            ]
        )
    return rows


def validate_run(results):
    """A finished validate stage whose validation.csv lists a pass, a stand-in and a fail, in that (file) order."""
    stage = StageRun(results, "demo", "validate", "validate", tool_version="0.1.0")
    stage.start({}, {})
    rows = (
        _relation("fid-inception-blur", "FID", "inception", "pass", [1, 5, 9, 14, 20])
        + _relation("fid-raddino-blur", "FID", "raddino", "stand-in", [3, 2, 4, 1, 0])
        + _relation(
            "BLEU-4-references",
            "BLEU-4",
            "",
            "fail",
            [50, 80, None, 0],
            cis=False,
            controls=["references", "paraphrase", "other", "empty"],
        )
    )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.to_csv(stage.dir / "validation.csv", index=False)
    metrics = pd.DataFrame(
        [
            {
                "run_id": "validate",
                "model": "demo",
                "stage": "validate",
                "metric": r,
                "subset": "all",
                "extractor": None,
                "value": 1.0,
                "ci_low": None,
                "ci_high": None,
                "n_real": None,
                "n_synth": None,
                "note": v,
            }
            for r, v in table.drop_duplicates("relation")[["relation", "verdict"]].itertuples(index=False)
        ]
    )
    path = write_table(metrics, stage.dir / "metrics.parquet", "metrics", producer="test", run_id="validate")
    stage.finish({"validation": stage.dir / "validation.csv", "metrics": path})


def test_failures_first_one_chart_per_relation_with_a_point_per_level(report_cli, results):
    validate_run(results)
    result = report_cli("run", "--results", results, "--model", "demo", "--run-id", "validate")
    assert result.exit_code == 0, result.output
    folder = results / "demo" / "validate" / "report"
    panel = json.loads((folder / "report.json").read_text())["validation"]
    assert [r["relation"] for r in panel["relations"]] == [
        "BLEU-4-references",
        "fid-raddino-blur",
        "fid-inception-blur",
    ]
    assert panel["counts"] == {"fail": 1, "underpowered": 0, "stand-in": 1, "pass": 1}
    bleu = panel["relations"][0]
    assert [p["label"] for p in bleu["points"]] == ["L0", "L1", "L2", "L3"]
    assert bleu["points"][2]["value"] is None and bleu["points"][0]["ci_low"] is None

    html = (folder / "report.html").read_text()
    section = html[html.index('<section id="validation">') : html.index("</section>", html.index('id="validation"'))]
    figures = re.findall(r'data-relation="([^"]+)" data-verdict="([^"]+)"', section)
    assert figures == [("BLEU-4-references", "fail"), ("fid-raddino-blur", "stand-in"), ("fid-inception-blur", "pass")]
    for i, (n_points, n_cis) in enumerate([(3, 0), (5, 5), (5, 5)]):  # the missing BLEU value is drawn as n/a
        chart = section.split(f'data-chart="validation-{i}"')[1].split("</figure>")[0]
        assert len(re.findall(rf'id="validation-{i}-pt-\d+"', chart)) == n_points
        assert len(re.findall(rf'id="validation-{i}-ci-\d+"', chart)) == n_cis
    assert "why fid-raddino-blur" in section and "n/a" in section


def test_a_run_without_validation_has_no_panel(report_cli, results, full_run):
    result = report_cli("run", "--results", results, "--model", "m", "--run-id", "r")
    assert result.exit_code == 0, result.output
    folder = full_run.dir / "report"
    assert json.loads((folder / "report.json").read_text())["validation"] is None
    assert 'id="validation"' not in (folder / "report.html").read_text()
