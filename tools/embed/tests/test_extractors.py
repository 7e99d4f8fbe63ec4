"""Extractor registry: what each one declares, and vectors against independent computations."""

from __future__ import annotations

import json

import numpy as np
import torch
from chexbench_common.hashing import sha256_tree
from chexbench_embed.extractors import build_spec, load_encoder
from chexbench_embed.inception import default_weights, logits_status
from chexbench_schema import read_embeddings
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
CPU = torch.device("cpu")


def test_raddino_vector_is_the_cls_token_after_the_final_layer_norm(tiny_raddino):
    spec = build_spec("raddino", tiny_raddino)
    assert spec.dim == 32 and spec.weights_sha256 == sha256_tree(tiny_raddino)
    grey = torch.rand(3, 1, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = load_encoder(spec, CPU)(grey)
        model = AutoModel.from_pretrained(tiny_raddino, local_files_only=True).eval()
        pixels = (grey.expand(-1, 3, -1, -1) * spec.transform.gain - 0.5307) / 0.2583
        last = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(ours, model.layernorm(last)[:, 0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours, last[:, 0], atol=1e-2)  # the raw CLS token is something else


def test_end_to_end_matches_the_hf_processor_and_model(tiny_raddino, image_sets, embed):
    folder = tiny_raddino
    result = embed("run", "--model", "m", *image_sets["real"], "--extractor", f"raddino={folder}")
    assert result.exit_code == 0, result.stderr
    ours = read_embeddings(result.stdout.split()[0]).vectors
    proc = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    eight_bit = [i for i, n in enumerate(image_sets["real_names"]) if i % 3 != 1]  # the processor needs 8-bit input
    images = [Image.open(image_sets["real_root"] / image_sets["real_names"][i]).convert("RGB") for i in eight_bit]
    with torch.no_grad():
        reference = model(**proc(images=images, return_tensors="pt")).pooler_output.numpy()
    # The processor rounds its resized pixels to 8 bits and we do not: each vector must be far closer to its own
    # reference than to any other image's (measured: about 0.01 against 0.26).
    distances = np.linalg.norm(ours[eight_bit][:, None] - reference[None], axis=2)
    own, others = np.diag(distances), np.where(np.eye(len(eight_bit), dtype=bool), np.inf, distances).min(1)
    assert np.all(own < 0.1 * others)


def recipe_reference(root, names, size: int, mean, std) -> torch.Tensor:
    """The published recipes written independently: each RGB channel of the image bicubic-resized straight to
    size x size (PIL on float32, no crop), scaled to [0, 1], normalised per channel."""
    batch = []
    for name in names:
        with Image.open(root / name) as img:
            scale = 65535.0 if img.mode.startswith("I") else 255.0
            pixels = np.asarray(img, dtype=np.float32) / scale
        channels = [np.asarray(Image.fromarray(pixels).resize((size, size), Image.BICUBIC)) for _ in range(3)]
        batch.append(
            (torch.from_numpy(np.stack(channels)) - torch.tensor(mean)[:, None, None])
            / torch.tensor(std)[:, None, None]
        )
    return torch.stack(batch)


def test_clip_vectors_follow_the_cmmd_recipe(tiny_clip, image_sets, embed):
    from transformers import CLIPModel

    spec = build_spec("clip", tiny_clip)
    assert spec.dim == 24 and spec.preprocessing()["output"] == [3, 336, 336]
    result = embed("run", "--model", "m", *image_sets["synthetic"], "--extractor", f"clip={tiny_clip}")
    assert result.exit_code == 0, result.stderr
    ours = read_embeddings(result.stdout.split()[0]).vectors
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    names = sorted(p.name for p in image_sets["synth_root"].iterdir())
    pixels = recipe_reference(image_sets["synth_root"], names, 336, mean, std)
    with torch.no_grad():
        model = CLIPModel.from_pretrained(tiny_clip, local_files_only=True).eval()  # the full model's own path
        reference = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    reference = torch.nn.functional.normalize(reference, dim=-1).numpy()
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)


def test_dinov2_vectors_follow_the_dgm_eval_recipe(tiny_dinov2, image_sets, embed):
    spec = build_spec("dinov2", tiny_dinov2)  # its processor (resize 64, crop 56) is not what dgm-eval does
    assert spec.preprocessing()["output"] == [3, 224, 224] and "squash to 224x224" in spec.preprocessing()["resize"]
    result = embed("run", "--model", "m", *image_sets["synthetic"], "--extractor", f"dinov2={tiny_dinov2}")
    assert result.exit_code == 0, result.stderr
    ours = read_embeddings(result.stdout.split()[0]).vectors
    names = sorted(p.name for p in image_sets["synth_root"].iterdir())
    pixels = recipe_reference(image_sets["synth_root"], names, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        model = AutoModel.from_pretrained(tiny_dinov2, local_files_only=True).eval()
        last = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        cls = model.layernorm(last)[:, 0].numpy()  # the CLS token after the final layer norm
    np.testing.assert_allclose(ours, cls, rtol=1e-4, atol=1e-4)


def test_inception_uses_the_fid_helper_torchscript_and_reports_no_logits(image_sets, embed):
    spec = build_spec("inception", None)
    assert spec.weights == default_weights() and spec.weights_sha256 == FID_HELPER_SHA256
    assert spec.dim == 2048 and spec.logits.startswith("unavailable (")
    args = ("--extractor", "inception", "--num-workers", "0", "--batch-size", "2")
    result = embed("run", "--model", "m", *image_sets["synthetic"], *args)
    assert result.exit_code == 0, result.stderr
    table = read_embeddings(result.stdout.split()[0])
    extra = table.metadata["extra"]
    assert extra["weights_sha256"] == FID_HELPER_SHA256 and extra["dim"] == 2048
    assert "no 1008-class output layer" in extra["logits"] and extra["preprocessing"]["output"] == [3, 299, 299]

    # Independent reference: each RGB channel resized separately, TF scaling, the TorchScript net called directly.
    net = torch.jit.load(str(default_weights()), map_location="cpu").eval()
    refs = []
    for name in sorted(p.name for p in image_sets["synth_root"].iterdir()):
        with Image.open(image_sets["synth_root"] / name) as img:
            scale = 65535.0 if img.mode.startswith("I") else 255.0
            pixels = np.asarray(img, dtype=np.float32) / scale
        channels = [np.asarray(Image.fromarray(pixels).resize((299, 299), Image.BICUBIC)) for _ in range(3)]
        refs.append(torch.from_numpy(np.stack(channels)) * 255 / 128 - 1)
    with torch.no_grad():
        reference = net(torch.stack(refs)).numpy()
    np.testing.assert_allclose(table.vectors, reference, rtol=1e-4, atol=1e-4)


def test_logits_status_reads_the_weights():
    assert "no 1008-class output layer" in logits_status(["net.layers.conv.weight", "net.layers.conv.beta"])
    assert "have an output layer" in logits_status(["net.layers.conv.weight", "net.output.weight"])


def test_missing_or_wrong_weights_give_clear_messages(tmp_path, image_sets, embed):
    base = ("run", "--model", "m", "--images", image_sets["images"], "--images-root", image_sets["synth_root"])
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases = [
        (f"inception={tmp_path / 'nope.pt'}", 5, f"weights file {tmp_path / 'nope.pt'} not found"),
        (f"raddino={tmp_path / 'nope'}", 5, f"model folder {tmp_path / 'nope'} not found"),
        (f"dinov2={tmp_path / 'bert'}", 5, "holds a 'bert' model, not DINOv2"),
        ("raddino", 3, "extractor raddino needs a local model folder"),
        ("clap", 3, "unknown extractor 'clap'"),
        (f"clip={tmp_path / 'bert'}", 5, "holds a 'bert' model, not CLIP"),
    ]
    for extractor, code, message in cases:
        result = embed(*base, "--extractor", extractor)
        assert result.exit_code == code, (extractor, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "Results" / "m" / "default" / "embed").exists()
