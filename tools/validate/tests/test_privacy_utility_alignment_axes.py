"""The set builders of the privacy, utility and alignment axes on a small real pool: what each set holds, that it is
seeded, and the refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_common.imageio import load_grey
from chexbench_schema import read_table, write_table
from chexbench_validate.axes.alignment import findings
from chexbench_validate.cli import main
from click.testing import CliRunner

FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "No Finding")
BIN = Path(sys.executable).parent


def run(*args, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def pool(real_pool, tmp_path):
    """The real pool with labels: a finding per image (four kinds) and Support Devices on every other image; split
    reference / holdout / unseen."""
    prompts, root = real_pool
    table = read_table(prompts, "prompts")
    for i in table.index:
        table.loc[i, FINDINGS[i % 4]] = 1.0
        table.loc[i, "Support Devices"] = float(i % 2)
    labelled = write_table(table, tmp_path / "labelled.parquet", "prompts", producer="test")
    out = tmp_path / "sets"
    thirds = ("--split", "reference=0.5", "--split", "holdout=0.25", "--split", "unseen=0.25")
    run("split", "--pool-prompts", labelled, "--out", out, "--seed", "1", *thirds)
    return labelled, root, out


def common(pool, seed: int = 0):
    labelled, root, out = pool
    return ["--pool-prompts", labelled, "--pool-root", root, "--out", out, "--seed", seed]


def pixels(path: Path) -> np.ndarray:
    return load_grey(path)


@pytest.fixture
def sample(pool, tmp_path):
    _, root, out = pool
    results = tmp_path / "Results"
    args = ["sample", "--results", results, "--model", "demo", "--run-id", "v", "--prompts"]
    args += [out / "prompts_reference.parquet", "--real-root", root, "-n", "12", "--controls", "4", "--size", "64"]
    done = subprocess.run([BIN / "chexbench-privacy", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return results / "demo" / "v" / "privacy-sample"


def test_privacy_sets_plant_the_stages_own_copies_among_unseen_images(pool, sample):
    _, _, out = pool
    run("build", "privacy", *common(pool), "--sample-dir", sample, "-n", "4")
    plan = pd.read_csv(out / "plan.csv", keep_default_na=False)
    # shares 0, 1, 5, 20, 100 % of 4 images: 0, 1, 1, 1, 4 copies; one copy-free set for every strength
    assert sorted(plan["set_id"]) == sorted(
        ["privacy-none"] + [f"privacy-{s}-k{k}" for s in ("exact", "mild", "moderate", "strong") for k in (1, 4)]
    )
    assert dict(zip(plan["set_id"], plan["level"], strict=True))["privacy-mild-k1"] == 0.25
    union = pd.read_csv(out / "privacy-all" / "images.csv")
    assert not union.duplicated(["prompt_id", "sample_index"]).any()  # one image id, one image, across every set
    control = read_table(sample / "control" / "images.parquet", "images")
    strengths = pd.read_csv(sample / "control" / "augmentations.csv").set_index("image_id")["strength"]
    sampled = set(read_table(sample / "prompts.parquet", "prompts")["prompt_id"])
    unseen_ids = set(pd.read_csv(out / "splits.csv").query("split == 'unseen'")["prompt_id"])
    for row in plan.itertuples():
        rows = pd.read_csv(out / row.set_id / "images.csv")
        assert len(rows) == 4 and set(rows["prompt_id"]) <= sampled
        copies = rows[rows["sample_index"] > 0]
        assert len(copies) == round(row.level * 4)
        for r in copies.itertuples():
            image_id = f"{r.prompt_id}-{row.strength}"
            assert strengths[image_id] == row.strength
            source = sample / "control" / "images" / control.set_index("image_id").loc[image_id, "path"]
            assert np.array_equal(pixels(out / row.set_id / r.file), pixels(source))
        for r in rows[rows["sample_index"] == 0].itertuples():
            assert r.file.removeprefix("images/unseen-").removesuffix(".png") in unseen_ids
            assert r.prompt_id not in set(control["prompt_id"])  # answered under a prompt that is no copy's source


def test_privacy_sets_are_seeded_and_need_enough_copies(pool, sample):
    _, _, out = pool
    run("build", "privacy", *common(pool, 0), "--sample-dir", sample, "-n", "4")
    first = (out / "privacy-none" / "images.csv").read_text()
    run("build", "privacy", *common(pool, 0), "--sample-dir", sample, "-n", "4")
    assert (out / "privacy-none" / "images.csv").read_text() == first
    run("build", "privacy", *common(pool, 5), "--sample-dir", sample, "-n", "4")
    assert (out / "privacy-none" / "images.csv").read_text() != first
    refused = run("build", "privacy", *common(pool), "--sample-dir", sample, "-n", "5", code=3)
    assert "4 control sources" in refused.output and "--controls 5" in refused.output


def test_utility_plants_the_label_in_the_real_images_and_keeps_intact_absent_or_reversed_in_the_twins(pool):
    _, _, out = pool
    run("build", "utility", *common(pool), "--max-side", "48", "--marker", "0.25")
    real = out / "utility-real"
    corner = (slice(10, 20), slice(10, 20))  # inside the square: rows and columns 9..20 of 48 px
    for split in ("reference", "holdout"):
        table = read_table(real / f"prompts_{split}.parquet", "prompts")
        for row in table.to_dict("records"):
            marked = pixels(real / row["image_path"])[corner].min() == 1.0
            assert marked == (row["Support Devices"] == 1.0)
    train = read_table(real / "prompts_reference.parquet", "prompts").set_index("prompt_id")
    agreement = {}
    for control in ("intact", "absent", "reversed"):
        rows = pd.read_csv(out / f"utility-{control}" / "images.csv")
        marked = np.array([pixels(out / f"utility-{control}" / f)[corner].min() == 1.0 for f in rows["file"]])
        positive = (train.loc[rows["prompt_id"], "Support Devices"] == 1).to_numpy()
        agreement[control] = float(np.mean(marked == positive))
        if control == "absent":  # half of each class: the square says nothing about the label
            assert marked[positive].sum() == positive.sum() // 2 and marked[~positive].sum() == (~positive).sum() // 2
    assert agreement["intact"] == 1.0 and agreement["reversed"] == 0.0 and 0.0 < agreement["absent"] < 1.0
    plan = pd.read_csv(out / "plan.csv")
    assert plan.set_index("control")["level"].to_dict() == {"intact": 0, "absent": 1, "reversed": 2}
    run("build", "utility", *common(pool), "--label", "Fracture", code=3)  # no positive image: refused


def test_alignment_pairs_each_image_with_its_own_another_pathologys_and_a_shuffled_prompt(pool):
    labelled, _, out = pool
    run("build", "alignment", *common(pool), "-n", "6", "--max-side", "48")
    table = read_table(labelled, "prompts").set_index("prompt_id")
    sets = {c: pd.read_csv(out / f"alignment-{c}" / "images.csv") for c in ("matched", "other", "shuffled")}
    images = sets["matched"]["file"]
    assert all((s["file"] == images).all() for s in sets.values())  # the same images in every set
    own = [f.removeprefix("images/").removesuffix(".png") for f in images]
    assert sets["matched"]["prompt_id"].tolist() == own
    for mine, other in zip(own, sets["other"]["prompt_id"], strict=True):
        assert findings(table.loc[mine]) and not findings(table.loc[mine]) & findings(table.loc[other])
    shuffled = sets["shuffled"]["prompt_id"].tolist()
    assert sorted(shuffled) == sorted(own) and all(a != b for a, b in zip(shuffled, own, strict=True))
