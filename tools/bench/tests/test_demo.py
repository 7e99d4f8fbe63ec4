import numpy as np
import pandas as pd
import pytest
from chexbench_bench.cli import main
from chexbench_bench.drr import Pose, demo_poses, render
from chexbench_bench.prompts import demo_prompts, label_row, prompt_id
from chexbench_common.imageio import load_grey
from chexbench_schema import read_table
from click.testing import CliRunner


def test_demo_prompts_are_distinct_and_labelled():
    prompts = demo_prompts(40)
    texts = [text for text, _ in prompts]
    assert len(set(texts)) == 40 and len({prompt_id(t) for t in texts}) == 40
    rows = [label_row(labels) for _, labels in prompts]
    assert sum(r["Support Devices"] == 1 for r in rows) == 20
    assert any(r["Atelectasis"] == -1 for r in rows)
    assert all(any(r[label] == 1 for r in rows) for label in rows[0])  # every conditional group has members
    assert not any(r["No Finding"] == 1 and r["Pleural Other"] == 1 for r in rows)
    with pytest.raises(ValueError, match="at most 40"):
        demo_prompts(41)


def test_render_projects_dense_structures_bright_and_poses_differ():
    mu = np.zeros((40, 40, 40), np.float32)
    mu[5:35, :, 5:35] = 1.0  # soft tissue block
    mu[18:22, :, 5:35] = 3.0  # a dense "spine" column running cranio-caudally
    straight = render(mu, Pose(0, 0), 64).astype(np.float32) / 65535
    assert straight.dtype == np.float32 and straight.shape == (64, 64)
    centre_column, side = straight[20:44, 30:34].mean(), straight[20:44, 14:18].mean()
    assert centre_column > side > straight[:, :3].mean()
    turned = render(mu, Pose(12, 0), 64).astype(np.float32) / 65535
    assert np.abs(turned - straight).mean() > 0.01
    assert len(set(demo_poses(10))) == 10 and demo_poses(10) == demo_poses(10)


def test_prepare_writes_real_images_and_a_valid_prompts_table(tmp_path):
    args = ["demo-inputs", "--results", str(tmp_path), "--n-drr", "2", "--size", "64"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    inputs = tmp_path / "demo" / "default" / "inputs"
    prompts = read_table(inputs / "prompts.parquet", "prompts")
    assert len(prompts) == 3 and (inputs / "_SUCCESS").exists()
    for rel in prompts["image_path"]:
        grey = load_grey(inputs / "real" / rel)
        assert grey.std() > 0.05  # a real radiograph, not a blank placeholder
    assert prompts.loc[0, "image_path"].endswith(".dcm")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "already complete" in again.stderr
    assert pd.read_parquet(inputs / "prompts.parquet").shape[0] == 3
