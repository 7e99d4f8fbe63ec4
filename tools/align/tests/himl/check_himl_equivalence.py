"""The isolated original environment equals the native scorer (issue 12): one random-weight BioViL-T built by
hi-ml-multimodal itself, scored on the same images and prompts by `chexbench-align run --engine himl` in .venv-himl
and `--engine native` in .venv; the two scores.csv must agree per image within TOLERANCE, and the metrics tables'
values likewise. Run by `make test-align-himl` (from .ci/run); exits non-zero on any difference.

    .venv/bin/python tools/align/tests/himl/check_himl_equivalence.py .venv-himl/bin .venv/bin
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_world  # noqa: E402

TOLERANCE = 1e-5  # cosine units: float32 forward passes of two implementations of the same network
HERE = Path(__file__).resolve().parent


def main(himl_bin: Path, native_bin: Path) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="align-himl-"))
    world = make_world(tmp)
    model = tmp / "himl-biovil"
    subprocess.run([str(himl_bin / "python"), str(HERE / "build_himl_biovil.py"), str(model)], check=True)
    tables = {}
    for engine, bin_dir in (("himl", himl_bin), ("native", native_bin)):
        args = world.args(
            "--engine",
            engine,
            "--run-id",
            f"r-{engine}",
            "--image-weights",
            str(model / "biovil_t_image_model_proj_size_128.pt"),
            "--text-model",
            str(model / "text"),
        )
        subprocess.run([str(bin_dir / "chexbench-align"), *args], check=True)
        out = world.results / "m" / f"r-{engine}" / "align"
        tables[engine] = (pd.read_csv(out / "scores.csv"), pd.read_parquet(out / "metrics.parquet"))
    (himl, himl_metrics), (native, native_metrics) = tables["himl"], tables["native"]
    assert list(himl["image_id"]) == list(native["image_id"]) and list(himl["set"]) == list(native["set"])
    diff = np.abs(himl["score"].to_numpy() - native["score"].to_numpy())
    metric_diff = np.nanmax(np.abs(himl_metrics["value"].to_numpy(float) - native_metrics["value"].to_numpy(float)))
    spread = native["score"].std()
    print(
        f"himl vs native: {len(diff)} per-image scores, max |diff| {diff.max():.3g} (tolerance {TOLERANCE:g}; "
        f"spread of the scores {spread:.3g}); metrics max |diff| {metric_diff:.3g}"
    )
    if spread < 10 * TOLERANCE:
        print("the random model scores every pair alike: the comparison would prove nothing", file=sys.stderr)
        return 1
    return 0 if diff.max() <= TOLERANCE and metric_diff <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
