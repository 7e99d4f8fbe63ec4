"""chexbench-report leaderboard: the original's CSV layout (overall and per pathology) with CIs, every finished run
and only those, and the rank rule (ties by overlapping CIs)."""

import pandas as pd
import pytest
from chexbench_report.leaderboard import BY_NAME, rank
from chexbench_schema import ORIGINAL_LEADERBOARD_COLUMNS as ORIGINAL
from report_world import POSITIVE, build_run


def _board(report_cli, results, tmp_path, *extra):
    out = tmp_path / "board"
    result = report_cli("leaderboard", "--results", results, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "leaderboard.csv"), pd.read_csv(out / "leaderboard_conditional.csv"), result


def test_two_seeds_in_the_original_layout_with_cis(report_cli, results, tmp_path):
    one = build_run(results, run_id="seed1", seed=1, fid=(50.0, 45.0, 55.0))
    build_run(results, run_id="seed2", seed=2, fid=(53.0, 49.0, 58.0))
    overall, conditional, result = _board(report_cli, results, tmp_path)
    assert list(overall.columns[: len(ORIGINAL)]) == list(ORIGINAL)
    assert list(conditional.columns[: len(ORIGINAL) + 1]) == [*ORIGINAL, "Pathology"]
    rows = overall.set_index("Run ID")
    fid = ["FID (RadDino)", "FID (RadDino) CI low", "FID (RadDino) CI high"]
    assert rows.loc["seed1", fid].tolist() == [50, 45, 55] and rows.loc["seed2", fid].tolist() == [53, 49, 58]
    assert rows["Seed"].to_dict() == {"seed1": 1, "seed2": 2}
    assert rows.loc["seed1", "Extra Info"] == "m seed 1" and rows.loc["seed1", "Caption Type"] == "t"
    # the values of the other stages, from their metrics tables
    fidelity = one.metrics["fidelity"]
    fid_inception = fidelity[(fidelity["metric"] == "FID") & (fidelity["extractor"] == "inception")]["value"].item()
    assert rows.loc["seed1", "FID"] == fid_inception and pd.isna(rows.loc["seed1", "FID CI low"])
    assert rows.loc["seed1", "Alignment_score"] == 0.4 and rows.loc["seed1", "Avg. Re-ID Score"] == 0.51
    classify = one.metrics["classify"]
    auc = classify[(classify["metric"] == "auc_macro") & (classify["subset"] == "all_synthetic/seed0")]
    assert rows.loc["seed1", ["AUROC (trained on synthetic)", "AUROC (trained on synthetic) CI low"]].tolist() == [
        auc["value"].item(),
        auc["ci_low"].item(),
    ]
    # per pathology: one row per run and label with a value, FID per label from fidelity's rows
    assert set(conditional["Pathology"]) == set(POSITIVE)
    row = conditional[(conditional["Run ID"] == "seed1") & (conditional["Pathology"] == "Atelectasis")]
    atelectasis = fidelity[fidelity["subset"] == "Atelectasis"].set_index(["metric", "extractor"])
    for column, key in (
        ("FID (RadDino)", ("FID", "raddino")),
        ("FD_DINOv2", ("FID", "dinov2")),
        ("CMMD", ("CMMD", "clip")),
    ):
        assert row[column].item() == atelectasis.loc[key, "value"], column
        assert row[f"{column} CI low"].item() == atelectasis.loc[key, "ci_low"], column
    assert result.stdout.splitlines()[-1].endswith("leaderboard.html")


def test_unfinished_and_auxiliary_runs_are_left_out(report_cli, results, tmp_path):
    build_run(results, run_id="done")
    build_run(results, run_id="broken", stages=("generate", "fidelity"), failed={"fidelity": "boom"})
    build_run(results, run_id="images-only", stages=("generate", "embed"))  # like <run>.privacy: no metrics
    overall, _, _ = _board(report_cli, results, tmp_path)
    assert overall["Run ID"].tolist() == ["done"]


def test_no_finished_run_is_one_error_line(report_cli, results, tmp_path):
    results.mkdir()
    result = report_cli("leaderboard", "--results", results, "--out", tmp_path / "board")
    assert result.exit_code == 3 and len(result.stderr.strip().splitlines()) == 1
    assert "no finished run with a metrics table" in result.stderr
    assert not (tmp_path / "board").exists()


def test_rank_by_an_unknown_column_is_refused(report_cli, results, tmp_path):
    build_run(results)
    result = report_cli("leaderboard", "--results", results, "--out", tmp_path / "b", "--rank-by", "FIDD")
    assert result.exit_code == 3 and "--rank-by 'FIDD': not a leaderboard column" in result.stderr


def _rows(column: str, values: list[tuple]) -> list[dict]:
    return [
        {"Run ID": str(i), column: v, f"{column} CI low": low, f"{column} CI high": high}
        for i, (v, low, high) in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("column", "values", "ranks", "best"),
    [
        # lower is better: 10 is best; 12 [9.5, 13] overlaps [8, 11]: tied; 20 [19, 21] does not: rank 3
        ("FID (RadDino)", [(12, 9.5, 13), (20, 19, 21), (10, 8, 11)], [1, 3, 1], 2),
        # no CI: the interval is the point; 11 lies inside the best's [8, 11.5]: tied; 12 does not
        ("FID (RadDino)", [(10, 8, 11.5), (11, None, None), (12, None, None)], [1, 1, 3], 0),
        # higher is better: 0.8 best; 0.7 [0.6, 0.75] misses [0.78, 0.82]; runs without a value are not ranked
        (
            "Alignment_score",
            [(0.7, 0.6, 0.75), (0.8, 0.78, 0.82), (None, None, None), (0.5, 0.4, 0.6)],
            [2, 1, None, 3],
            1,
        ),
    ],
)
def test_rank_rule(column, values, ranks, best):
    rows = _rows(column, values)
    rank(rows, BY_NAME[column])
    assert [r["Rank"] for r in rows] == ranks
    notes = [r["Rank note"] for r in rows]
    assert notes[best] == "best"
    assert all(note == "tied with best (CIs overlap)" for i, note in enumerate(notes) if ranks[i] == 1 and i != best)
    assert all(note.startswith("no ") for i, note in enumerate(notes) if ranks[i] is None)


def test_a_run_with_a_malformed_metrics_table_is_left_out_with_one_line(report_cli, results, tmp_path):
    build_run(results, run_id="good")
    build_run(results, run_id="torn")
    build_run(results, run_id="foreign")
    torn = results / "m" / "torn" / "fidelity" / "metrics.parquet"
    torn.write_bytes(torn.read_bytes()[:100])  # cut short: not a parquet file any more
    foreign = results / "m" / "foreign" / "align" / "metrics.parquet"
    pd.DataFrame({"something": [1.0]}).to_parquet(foreign)  # a parquet file, but not a metrics table
    overall, _, result = _board(report_cli, results, tmp_path)
    assert overall["Run ID"].tolist() == ["good"]
    warned = [line for line in result.stderr.splitlines() if "left out run" in line]
    assert len(warned) == 2 and "Traceback" not in result.stderr, result.stderr
    assert "m/foreign" in warned[0] and str(foreign) in warned[0]
    assert "m/torn" in warned[1] and str(torn) in warned[1]


def test_when_no_run_can_be_read_it_is_one_error_line(report_cli, results, tmp_path):
    build_run(results, run_id="torn")
    (results / "m" / "torn" / "fidelity" / "metrics.parquet").write_text("not parquet")
    result = report_cli("leaderboard", "--results", results, "--out", tmp_path / "board")
    assert result.exit_code == 3, result.output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "none of the 1 finished runs can be read" in errors[0] and "m/torn" in errors[0]
