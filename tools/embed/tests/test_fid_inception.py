"""FID Inception-v3 from a state_dict: the checkpoint's layout, agreement with the fid-helper TorchScript, and the
pool3 + logits tables of one forward pass carried through to fidelity's Inception Score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from chexbench_common.hashing import sha256_file
from chexbench_embed import fid_inception
from chexbench_embed.fid_inception import FIDInceptionV3
from chexbench_embed.inception import default_weights
from chexbench_schema import read_embeddings, read_table
from click.testing import CliRunner
from PIL import Image

# Independent facts about pytorch-fid's pt_inception-2015-12-05-6726825d.pth (torchvision's Inception3 with
# num_classes=1008 and no AuxLogits): 94 conv+batch-norm layers (the fid-helper TorchScript of the same TF graph has
# 94 layers of 4 tensors) of 5 tensors each (conv.weight, bn.weight/bias/running_mean/running_var), plus fc.
CONV_LAYERS = 94
SPOT_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}

# fid-helper / NVIDIA TorchScript names (net.layers.<block>[.<tower>].<conv>.<weight|beta|mean|var>) -> torchvision's
STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
MIXED = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]
BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
BLOCK_B = {"conv": "branch3x3", **{f"tower.conv{s}": f"branch3x3dbl_{i}" for i, s in enumerate(["", "_1", "_2"], 1)}}
BLOCK_C = {
    "conv": "branch1x1",
    **{f"tower.conv{s}": f"branch7x7_{i}" for i, s in enumerate(["", "_1", "_2"], 1)},
    **{f"tower_1.conv{s}": f"branch7x7dbl_{i}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"], 1)},
    "tower_2.conv": "branch_pool",
}
BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i}" for i, s in enumerate(["", "_1", "_2", "_3"], 1)},
}
BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
BLOCKS = [BLOCK_A] * 3 + [BLOCK_B] + [BLOCK_C] * 4 + [BLOCK_D] + [BLOCK_E] * 2
PARAMS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def torchvision_name(name: str) -> str:
    path, param = name.removeprefix("net.layers.").rsplit(".", 1)
    block, _, conv = path.partition(".")
    if block.startswith("conv"):
        return f"{STEM[int(block.removeprefix('conv').lstrip('_') or 0)]}.{PARAMS[param]}"
    index = int(block.removeprefix("mixed").lstrip("_") or 0)
    return f"Mixed_{MIXED[index]}.{BLOCKS[index][conv]}.{PARAMS[param]}"


def checkpoint_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the checkpoint: the module's state_dict without the batch-norm step counters."""
    state = FIDInceptionV3().state_dict()
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def random_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key and shape of the checkpoint with random values of sane scale (positive variances)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in checkpoint_layout().items():
        if key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


def reference_inputs(root, names) -> torch.Tensor:
    """Each RGB channel resized separately with PIL bicubic, then the TF scaling (x*255 - 128) / 128."""
    refs = []
    for name in names:
        with Image.open(root / name) as img:
            scale = 65535.0 if img.mode.startswith("I") else 255.0
            pixels = np.asarray(img, dtype=np.float32) / scale
        channels = [np.asarray(Image.fromarray(pixels).resize((299, 299), Image.BICUBIC)) for _ in range(3)]
        refs.append(torch.from_numpy(np.stack(channels)) * 255 / 128 - 1)
    return torch.stack(refs)


def test_the_module_has_the_checkpoints_keys_and_shapes():
    layout = checkpoint_layout()
    assert len(layout) == CONV_LAYERS * 5 + 2
    scripted = torch.jit.load(str(default_weights()), map_location="cpu").state_dict()
    assert len(scripted) == CONV_LAYERS * 4
    assert {k: layout[k] for k in SPOT_SHAPES} == SPOT_SHAPES
    assert not any(k.startswith("AuxLogits") for k in layout)


def test_pool3_equals_the_fid_helper_torchscript_with_its_weights_copied_in(monkeypatch):
    scripted = torch.jit.load(str(default_weights()), map_location="cpu").eval()
    state = {torchvision_name(k): v for k, v in scripted.state_dict().items()}
    layout = checkpoint_layout()
    assert len(state) == CONV_LAYERS * 4 and all(tuple(v.shape) == layout[k] for k, v in state.items())
    for key, shape in layout.items():  # the TF graph's batch norms have no scale; fc is not in the TorchScript
        state.setdefault(key, torch.ones(shape) if key.endswith("bn.weight") else torch.zeros(shape))
    net = FIDInceptionV3().eval()
    net.load_state_dict(state, strict=True)
    x = torch.rand(3, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        reference = scripted(x)
        pool3, logits = net(x)
        assert (pool3 - reference).abs().max() < 1e-4 < reference.abs().max()
        assert logits.shape == (3, 1008)
        # the FID details matter: torchvision's last E block (average pool) or zero-counting pools differ by far
        net.Mixed_7c.max_pool = False
        assert (net(x)[0] - reference).abs().max() > 0.1
        net.Mixed_7c.max_pool = True
        monkeypatch.setattr(fid_inception, "_avg_pool", lambda t: torch.nn.functional.avg_pool2d(t, 3, 1, 1))
        assert (net(x)[0] - reference).abs().max() > 0.1


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_state_dict_writes_pool3_and_logits_from_one_pass(tmp_path, image_sets, embed, zipped):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    state = random_checkpoint()
    torch.save(state, weights, _use_new_zipfile_serialization=zipped)
    args = ("--extractor", f"inception={weights}", "--num-workers", "0", "--batch-size", "3")
    result = embed("run", "--model", "m", *image_sets["real"], *image_sets["synthetic"], *args)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "Results" / "m" / "default" / "embed"
    names = ["real-inception", "real-inception-logits", "synthetic-inception", "synthetic-inception-logits"]
    assert result.stdout.split() == [str(out / f"{n}.parquet") for n in names]
    tables = {n: read_embeddings(out / f"{n}.parquet") for n in names}
    digest = sha256_file(weights)
    for name, table in tables.items():
        extra = table.metadata["extra"]
        assert extra["extractor"] == name.split("-", 1)[1] and extra["weights_sha256"] == digest
        assert extra["logits"].startswith("available") and extra["preprocessing"]["output"] == [3, 299, 299]
    assert tables["real-inception-logits"].vectors.shape == (4, 1008)

    # Independent reference: the module called directly on separately resized channels; logits = W pool3 + b.
    net = FIDInceptionV3().eval()
    net.load_state_dict(state)
    with torch.no_grad():
        pool3, _ = net(reference_inputs(image_sets["synth_root"], image_sets["synth_names"]))
    synth, logits = tables["synthetic-inception"].vectors, tables["synthetic-inception-logits"].vectors
    np.testing.assert_allclose(synth, pool3.numpy(), rtol=1e-4, atol=1e-4)
    expected = synth.astype(np.float64) @ state["fc.weight"].double().numpy().T + state["fc.bias"].double().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == {"inception": digest}
    assert manifest["counts"]["synthetic"]["inception-logits"] == {"rows": 4, "extracted": 4, "cached": 0}


def test_real_logits_are_cached_beside_pool3(tmp_path, image_sets, embed):
    weights = tmp_path / "fid.pth"
    torch.save(random_checkpoint(), weights)
    args = ("run", "--model", "m", *image_sets["real"], "--extractor", f"inception={weights}", "--num-workers", "0")
    first, second = embed(*args, "--run-id", "a"), embed(*args, "--run-id", "b")
    assert first.exit_code == second.exit_code == 0, first.stderr + second.stderr
    manifest = json.loads((tmp_path / "Results" / "m" / "b" / "embed" / "manifest.json").read_text())
    for table in ("inception", "inception-logits"):
        assert manifest["counts"]["real"][table] == {"rows": 4, "extracted": 0, "cached": 4}
    for a, b in zip(first.stdout.split(), second.stdout.split(), strict=True):
        np.testing.assert_array_equal(read_embeddings(a).vectors, read_embeddings(b).vectors)


def test_foreign_weights_are_refused_in_one_line(tmp_path, image_sets, embed):
    torchvision_like = random_checkpoint() | {"AuxLogits.fc.weight": torch.zeros(1000, 768)}
    torchvision_like["fc.weight"], torchvision_like["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(torchvision_like, tmp_path / "torchvision.pth")
    torch.save({"fc.weight": np.zeros(3)}, tmp_path / "pickled.pth")  # not loadable with weights_only
    (tmp_path / "notes.pth").write_text("not weights\n")
    cases = [
        (
            "torchvision.pth",
            "is not the FID Inception-v3 state_dict",
            "fc.weight is (1000, 2048), expected (1008, 2048)",
        ),
        ("pickled.pth", "neither a TorchScript file nor a weights-only state_dict", ""),
        ("notes.pth", "neither a TorchScript file nor a weights-only state_dict", ""),
    ]
    for name, message, detail in cases:
        result = embed("run", "--model", "m", *image_sets["synthetic"], "--extractor", f"inception={tmp_path / name}")
        assert result.exit_code == 5, (name, result.stderr)
        assert message in result.stderr and detail in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "Results" / "m" / "default" / "embed").exists()


def test_fidelity_computes_the_inception_score_from_the_embedded_logits(tmp_path, make, embed):
    fidelity = pytest.importorskip("chexbench_fidelity.cli", reason="the fidelity tool is installed in the dev venv")
    from chexbench_fidelity.inception_score import inception_score
    from scipy.special import softmax
    from scipy.stats import entropy

    names = make.images(tmp_path / "synth", 6, seed=3)
    images = make.images_table(tmp_path / "images.parquet", tmp_path / "synth", names)
    prompts = make.prompts_table(tmp_path / "prompts.parquet", make.images(tmp_path / "real", 6, seed=4))
    weights = tmp_path / "fid.pth"
    torch.save(random_checkpoint(seed=5), weights)
    sets = (
        "--prompts",
        prompts,
        "--real-root",
        tmp_path / "real",
        "--images",
        images,
        "--images-root",
        tmp_path / "synth",
    )
    result = embed("run", "--model", "m", *sets, "--extractor", f"inception={weights}", "--num-workers", "0")
    assert result.exit_code == 0, result.stderr
    results = tmp_path / "Results"
    options = ["--nearest-k", "2", "--is-splits", "2", "--kid-subset-size", "3", "--no-cache"]
    scored = CliRunner().invoke(fidelity.main, ["run", "--results", str(results), "--model", "m", *options])
    assert scored.exit_code == 0, scored.output
    frame = read_table(results / "m" / "default" / "fidelity" / "metrics.parquet", "metrics")
    row = frame[(frame.metric == "IS") & (frame.subset == "all")].iloc[0]
    logits = read_embeddings(results / "m" / "default" / "embed" / "synthetic-inception-logits.parquet").vectors
    order = np.random.default_rng(0).permutation(6)  # fidelity's seeded split order (seed 0)
    p = softmax(logits[order].astype(np.float64), axis=1)
    direct = np.mean([np.exp(np.mean([entropy(r, part.mean(0)) for r in part])) for part in np.array_split(p, 2)])
    assert row.extractor == "inception-logits" and row.n_synth == 6
    assert row.value == pytest.approx(direct, rel=1e-9) == inception_score(logits, splits=2).mean
    assert row.value > 1


def test_merged_shards_carry_both_tables(tmp_path, image_sets, embed):
    weights = tmp_path / "fid.pth"
    torch.save(random_checkpoint(), weights)
    base = (
        "run",
        "--model",
        "m",
        *image_sets["synthetic"],
        "--extractor",
        f"inception={weights}",
        "--num-workers",
        "0",
    )
    assert embed(*base, "--run-id", "whole").exit_code == 0
    for k in ("0", "1"):
        shard = embed(*base, "--run-id", "sharded", "--num-shards", "2", "--shard-index", k)
        assert shard.exit_code == 0, shard.stderr
    merged = embed("merge", "--model", "m", "--run-id", "sharded")
    assert merged.exit_code == 0, merged.stderr
    for name in ("synthetic-inception.parquet", "synthetic-inception-logits.parquet"):
        one = read_embeddings(tmp_path / "Results" / "m" / "whole" / "embed" / name)
        parts = read_embeddings(tmp_path / "Results" / "m" / "sharded" / "embed" / name)
        assert list(parts.frame["image_id"]) == list(one.frame["image_id"])
        assert parts.metadata["extra"]["extractor"] == one.metadata["extra"]["extractor"]
        np.testing.assert_allclose(parts.vectors, one.vectors, rtol=1e-5, atol=1e-5)
