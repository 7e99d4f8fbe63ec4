"""FRD through the fidelity stage: radiomics embeddings tables (NaN allowed) get FRD only, per group, with CIs."""

import numpy as np
import pandas as pd
import pytest
from chexbench_fidelity.frd import frechet_radiomics_distance
from chexbench_schema import CHEXPERT_LABELS
from fidelity_data import correlated, write_emb
from test_cli import invoke, metrics, stage_dir, value


def _radiomics_tables(ds, d=40):
    rng = np.random.default_rng(11)
    xr = correlated(rng, len(ds.prompt_ids), d) * np.logspace(0, 4, d)
    xs = correlated(rng, len(ds.image_ids), d, shift=0.3) * np.logspace(0, 4, d)
    xs[5, 3] = np.nan  # a feature undefined for one synthetic image: dropped on both sides
    real = write_emb(ds.root / "real-radiomics.parquet", ds.prompt_ids, xr, "real", "radiomics", non_finite="allowed")
    synth = write_emb(
        ds.root / "synthetic-radiomics.parquet", ds.image_ids, xs, "synthetic", "radiomics", non_finite="allowed"
    )
    return ["--real", str(real), "--synth", str(synth)], xr.astype(np.float32), xs.astype(np.float32)  # as stored


def test_frd_overall_and_per_pathology_with_a_bootstrap_interval(dataset):
    extra, xr, xs = _radiomics_tables(dataset)
    args = [*dataset.args(), *extra, "--prompts", str(dataset.prompts), "--images", str(dataset.images)]
    result = invoke(dataset, *args, "--conditional", "--bootstrap", "10")
    assert result.exit_code == 0, result.output
    frame = metrics(dataset)
    assert set(frame[frame.extractor == "radiomics"].metric) == {"FRD"}  # no FID/KID/P/R/D/C on radiomics
    row = value(frame, "FRD", extractor="radiomics")
    expected, used, note = frechet_radiomics_distance(xr, xs)
    assert row.value == pytest.approx(expected, rel=1e-12) and used == 39 and "1 feature(s)" in note
    assert row.ci_low < row.value < row.ci_high and "10 prompt-bootstrap replicates" in row.note
    assert value(frame, "precision").extractor == "raddino"  # P/R/D/C stays on RAD-DINO

    edema = dataset.labels[:, CHEXPERT_LABELS.index("Edema")] == 1
    real_rows = np.flatnonzero(edema)
    synth_rows = np.flatnonzero(np.repeat(edema, 2))  # two synthetic images per prompt, in prompt order
    per_group = value(frame, "FRD", subset="Edema", extractor="radiomics")
    assert per_group.value == pytest.approx(frechet_radiomics_distance(xr[real_rows], xs[synth_rows])[0], rel=1e-12)
    board = pd.read_csv(stage_dir(dataset) / "leaderboard.csv")
    assert board.loc[0, "FRD"] == pytest.approx(row.value)


def test_nan_in_a_radiomics_table_without_the_metadata_is_refused(dataset):
    rng = np.random.default_rng(0)
    xs = correlated(rng, len(dataset.image_ids), 8)
    xs[0, 0] = np.nan
    bad = dataset.root / "bad.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_emb(bad, dataset.image_ids, np.nan_to_num(xs), "synthetic", "radiomics")
    table = pq.read_table(bad)
    column = pa.FixedSizeListArray.from_arrays(pa.array(xs.astype(np.float32).reshape(-1)), 8)
    pq.write_table(table.set_column(table.column_names.index("vector"), "vector", column), bad)
    result = invoke(dataset, "--real", str(dataset.real["raddino"]), "--synth", str(bad))
    assert result.exit_code == 4 and "row 1, column 'vector': vector has NaN" in result.stderr
