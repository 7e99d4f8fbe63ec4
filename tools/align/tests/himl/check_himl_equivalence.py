"""The isolated original environment equals the native scorer, and both equal hi-ml's own end-to-end engine.

One random-weight BioViL-T is built by hi-ml-multimodal itself (build_himl_biovil.py) and the align test world
(align_world.py: a MONOCHROME1 DICOM with a window, a 16-bit PNG, 8-bit PNGs, a colour generation) is scored three
ways: `chexbench-align run --engine himl` in .venv-himl, `--engine native` in .venv, and, pair by pair, hi-ml's
`ImageTextInferenceEngine.get_similarity_score_from_raw_data` (himl_engine_scores.py, as CheXGenBench calls it). The
per-image scores must agree within TOLERANCE and be finite; the two metrics tables likewise, a value empty only where
it is empty on both sides (align_compare.py). The check refuses a model whose scores or image embeddings do not
spread: equality would then prove nothing. Run by `make test-align-himl` (from .ci/run); exits 1 on any difference.

    .venv/bin/python tools/align/tests/himl/check_himl_equivalence.py .venv-himl/bin .venv/bin
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from align_compare import TOLERANCE, compare_runs, max_abs_diff  # noqa: E402
from align_world import make_world  # noqa: E402
from chexbench_schema import read_table  # noqa: E402

IMAGE_FILE = "biovil_t_image_model_proj_size_128.pt"
MIN_IMAGE_SPREAD = 0.01  # 1 - the smallest pairwise cosine of the images' embeddings


def pair_files(world, scores: pd.DataFrame) -> pd.DataFrame:
    """Each scored row's image file and prompt: generations from the images table, ceilings from the prompts'."""
    images = read_table(world.images, "images").set_index("image_id")["path"]
    prompts = read_table(world.prompts, "prompts").set_index("prompt_id")["image_path"]
    files = [
        world.real_root / prompts[pid] if kind == "ceiling" else world.root / "gen" / images[iid]
        for kind, iid, pid in zip(scores["set"], scores["image_id"], scores["prompt_id"], strict=True)
    ]
    return pd.DataFrame({"file": [str(f) for f in files], "prompt": scores["prompt"]})


def main(himl_bin: Path, native_bin: Path) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="align-himl-"))
    world = make_world(tmp)
    model = tmp / "himl-biovil"
    subprocess.run([str(himl_bin / "python"), str(HERE / "build_himl_biovil.py"), str(model)], check=True)
    runs = {}
    for engine, bin_dir in (("himl", himl_bin), ("native", native_bin)):
        args = world.args(
            "--engine", engine, "--run-id", f"r-{engine}",
            "--image-weights", str(model / IMAGE_FILE), "--text-model", str(model / "text"),
        )  # fmt: skip
        subprocess.run([str(bin_dir / "chexbench-align"), *args], check=True)
        runs[engine] = world.results / "m" / f"r-{engine}" / "align"
    native = pd.read_csv(runs["native"] / "scores.csv")
    pair_files(world, native).to_csv(tmp / "pairs.csv", index=False)
    engine_csv = tmp / "engine.csv"
    subprocess.run(
        [str(himl_bin / "python"), str(HERE / "himl_engine_scores.py"), str(model), str(tmp / "pairs.csv"), engine_csv],
        check=True,
    )
    reference = pd.read_csv(engine_csv)["score"]
    image_spread = 1 - json.loads(engine_csv.with_suffix(".json").read_text())["image_cosine_min"]

    ok, line = compare_runs(runs["himl"], runs["native"])
    print(f"himl CLI vs native CLI: {line}")
    for engine, run in runs.items():
        diff = max_abs_diff(pd.read_csv(run / "scores.csv")["score"], reference, allow_nan=False)
        print(f"{engine} CLI vs hi-ml's ImageTextInferenceEngine, pair by pair: max |diff| {diff:.3g}")
        ok &= diff <= TOLERANCE
    spread = native["score"].std()
    print(f"spread: per-image scores {spread:.3g}, image embeddings 1 - min cosine {image_spread:.3g}")
    if spread < 10 * TOLERANCE or image_spread < MIN_IMAGE_SPREAD:
        print(f"the model in {tmp} scores every pair or image alike: equality would prove nothing", file=sys.stderr)
        return 1
    if not ok:
        print(f"NOT EQUAL (see above; the runs are in {tmp})", file=sys.stderr)
        return 1
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
