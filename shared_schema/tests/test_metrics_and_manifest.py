import json

import numpy as np
import pandas as pd
import pytest
from chexbench_schema import read_table, write_table
from chexbench_schema.errors import BadInputError
from chexbench_schema.manifest import read_manifest
from chexbench_schema.metrics import MetricRow, metrics_frame
from chexbench_schema.tables import METRICS


def test_a_stages_rows_become_a_valid_metrics_table_with_every_missing_number_null(tmp_path):
    rows = [
        MetricRow(
            "FID", np.float64(12.5), extractor="raddino", ci_low=11.0, ci_high=np.float32(14.25), n_real=np.int64(7)
        ),
        MetricRow("AUROC", float("nan"), "Edema", ci_low=np.nan, ci_high=None, n_real=3, note="one class only"),
        MetricRow("selected_epoch", 4, "p100/seed0"),
    ]
    frame = metrics_frame(rows, model="m", run_id="r", stage="fidelity")
    assert list(frame.columns) == [c.name for c in METRICS.columns]
    back = read_table(write_table(frame, tmp_path / "metrics.parquet", "metrics", producer="t"), "metrics")
    assert back[["run_id", "model", "stage"]].drop_duplicates().values.tolist() == [["r", "m", "fidelity"]]
    assert back["metric"].tolist() == ["FID", "AUROC", "selected_epoch"]
    assert back["subset"].tolist() == ["all", "Edema", "p100/seed0"]
    first, nan_row, epoch = (back.iloc[i] for i in range(3))
    assert (first["value"], first["ci_low"], first["ci_high"], first["n_real"]) == (12.5, 11.0, 14.25, 7)
    assert first["extractor"] == "raddino" and pd.isna(first["n_synth"])
    assert back.loc[1, ["value", "ci_low", "ci_high"]].isna().all() and nan_row["note"] == "one class only"
    assert epoch["value"] == 4.0 and back.loc[2, ["ci_low", "ci_high", "n_real", "note"]].isna().all()


def test_no_rows_is_an_empty_valid_table(tmp_path):
    frame = metrics_frame([], model="m", run_id="r", stage="align")
    back = read_table(write_table(frame, tmp_path / "metrics.parquet", "metrics", producer="t"), "metrics")
    assert len(back) == 0 and list(back.columns) == [c.name for c in METRICS.columns]


def test_a_manifest_is_read_or_refused_in_one_line_naming_it(tmp_path):
    folder = tmp_path / "embed"
    folder.mkdir()
    assert read_manifest(folder, missing_ok=True) == {}
    with pytest.raises(BadInputError, match=f"{folder / 'manifest.json'}: no manifest"):
        read_manifest(folder)
    (folder / "manifest.json").write_text('{"status": "succ')
    with pytest.raises(BadInputError, match="manifest.json: cannot be read as JSON .*delete it and rerun that stage"):
        read_manifest(folder, missing_ok=True)
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BadInputError, match="manifest.json: not a manifest"):
        read_manifest(folder)
    (folder / "manifest.json").write_text(json.dumps({"status": "success", "stage": "embed"}))
    assert read_manifest(str(folder)) == {"status": "success", "stage": "embed"}
