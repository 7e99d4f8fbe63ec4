"""The privacy section: which spaces use real weights and which can discriminate, the positive-control ladder per
strength and space with its CIs and detection limits, and the run's warnings; the headline keeps the verdicts over
every space."""

import re

import pytest
from click.testing import CliRunner
from report_world import LADDER, PRIVACY_SPACES, PRIVACY_WARNING, build_run, report_json, run_args


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from chexbench_report.cli import main

    results = tmp_path_factory.mktemp("privacy-panel") / "Results"
    run = build_run(results)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHEXBENCH_PROGRESS", "none")
        result = CliRunner().invoke(main, run_args(results))
    assert result.exit_code == 0, result.output
    html = (run.dir / "report" / "report.html").read_text()
    return (
        run,
        report_json(run),
        html[html.index('<section id="privacy">') : html.index('<section id="classification">')],
    )


def test_the_spaces_say_which_weights_are_real_and_which_space_is_not_informative(report):
    _, data, html = report
    assert data["privacy"]["spaces"] == PRIVACY_SPACES
    inception = re.search(r'<tr data-space="inception"[^>]*>.*?</tr>', html, re.S).group(0)
    assert 'data-weights="real"' in inception and "real weights" in inception and "not informative" not in inception
    reid = re.search(r'<tr data-space="reid"[^>]*>.*?</tr>', html, re.S).group(0)
    assert "random stand-in" in reid and "not informative" in reid and "8 channels wide" in reid


def test_the_ladder_shows_each_strength_per_space_with_its_ci(report):
    run, data, html = report
    ladder = data["privacy"]["ladder"]
    assert ladder["spaces"] == ["inception", "all spaces"]
    assert [row["strength"] for row in ladder["rows"]] == list(LADDER)
    metrics = run.metrics["privacy"]
    for row in ladder["rows"]:
        written = metrics[(metrics["metric"] == "control_sensitivity_any") & (metrics["subset"] == row["strength"])]
        assert [c["caught"]["value"] for c in row["cells"]] == written["value"].tolist()
        assert row["cells"][0]["rank1"]["value"] == 1.0 and row["cells"][1]["rank1"] is None
    moderate = re.search(r'<tr data-strength="moderate">.*?</tr>', html, re.S).group(0)
    assert "0.5" in moderate and "[0.25, 0.75]" in moderate
    assert html.count("every copy caught up to &#39;mild&#39;") == 2


def test_the_warnings_and_the_headline_verdicts(report):
    _, data, html = report
    assert data["privacy"]["warnings"] == [PRIVACY_WARNING]
    assert PRIVACY_WARNING.replace("'", "&#39;") in html
    headline = data["headline"]["privacy"]
    verdicts = [r for r in headline if r["metric"].endswith("_any") or r["metric"] == "control_detection_limit"]
    assert verdicts and all(r["extractor"] is None for r in verdicts)
    assert [r["subset"] for r in verdicts if r["metric"] == "control_sensitivity_any"] == list(LADDER)
