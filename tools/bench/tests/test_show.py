import pandas as pd
from chexbench_bench.cli import main
from click.testing import CliRunner


def test_show_prints_metrics_with_intervals_notes_and_pathologies(tmp_path):
    fid = tmp_path / "fidelity"
    fid.mkdir()
    pd.DataFrame(
        [
            {
                "FID": 12.5,
                "KID": 0.01,
                "Extra Info": "x",
                "Model": "sana",
                "Run ID": "r1",
                "N Real": 50,
                "N Synthetic": 50,
                "FID CI low": 11.0,
                "FID CI high": 14.0,
                "Notes": "FID: unstable | KID: fine",
            }
        ]
    ).to_csv(fid / "leaderboard.csv", index=False)
    pd.DataFrame([{"Pathology": "Edema", "N Real": 5, "N Synthetic": 5, "FID": 30.0, "KID": 0.2}]).to_csv(
        fid / "leaderboard_conditional.csv", index=False
    )
    assert CliRunner().invoke(main, ["show", str(fid)]).exit_code == 3  # not finished: no _SUCCESS
    (fid / "_SUCCESS").write_text("done\n")
    (fid / "manifest.json").write_text('{"status": "failed"}')
    assert CliRunner().invoke(main, ["show", str(fid)]).exit_code == 3  # a marker over a failed manifest: no
    (fid / "manifest.json").write_text('{"status": "success"}')
    result = CliRunner().invoke(main, ["show", str(fid)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "sana r1: n_real=50 n_synth=50"
    assert "FID" in lines[1] and "12.5" in lines[1] and "[11, 14]" in lines[1]
    assert "note: FID: unstable" in result.output and "note: KID: fine" in result.output
    assert "Edema" in result.output.split("per pathology:")[1]
