"""The same embed run twice gives the same vectors, bit for bit, for each extractor `make bench` uses."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from chexbench_embed.cli import main
from chexbench_schema import read_embeddings
from click.testing import CliRunner

EXTRACTORS = ("inception", "raddino", "radiomics")


def _run(tmp_path, image_sets, tiny_raddino, name: str, hash_seed: int | None) -> dict[str, object]:
    """`make bench`'s extractors with their default workers, into its own results root without the embedding cache
    (every vector computed); with a hash seed, in a process of its own with that string-hash seed (so another order
    of every set of names), else in this one."""
    args = [
        *("run", "--results", tmp_path / name, "--model", "m", *image_sets["real"], *image_sets["synthetic"]),
        *("--extractor", "inception", "--extractor", f"raddino={tiny_raddino}", "--extractor", "radiomics"),
        "--no-cache",
    ]
    if hash_seed is None:
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    else:
        command = [sys.executable, "-c", "from chexbench_embed.cli import main; main()", *map(str, args)]
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
    folder = tmp_path / name / "m" / "default" / "embed"
    return {
        f"{side}-{e}": read_embeddings(folder / f"{side}-{e}.parquet")
        for side in ("real", "synthetic")
        for e in EXTRACTORS
    }


@pytest.mark.slow
@pytest.mark.system
def test_the_same_run_twice_gives_bit_identical_vectors(tmp_path, image_sets, tiny_raddino):
    first = _run(tmp_path, image_sets, tiny_raddino, "first", None)
    second = _run(tmp_path, image_sets, tiny_raddino, "second", 12345)
    assert sorted(first) == sorted(second) and len(first) == 2 * len(EXTRACTORS)
    for name, table in first.items():
        other = second[name]
        pd.testing.assert_frame_equal(table.frame, other.frame, check_exact=True, obj=name)
        assert table.vectors.dtype == other.vectors.dtype == np.float32
        assert np.array_equal(table.vectors, other.vectors, equal_nan=True), name
        # not a trivial equality: the images differ, and so do their vectors
        assert len(np.unique(table.vectors, axis=0)) == len(table.vectors), name
