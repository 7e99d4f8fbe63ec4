"""convert / check-conversion on a tiny random LLaVA-Rad written in LLaVA-Rad's own layout (tiny.py).

The reference is `reference.py`: a plain-torch re-implementation of timm's DINOv2 forward and of LLaVA-Rad's
composition, reading the original files and sharing no code with layout/convert. The key-accounting test restates
the map (README, "What is mapped") on its own, so a wrong or incomplete map fails it even where a forward would not look
(the unused final norm, the zero rows).
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from chexbench_llava_convert.cli import main
from chexbench_llava_convert.convert import RECORD, convert
from chexbench_llava_convert.processor import image_processor, open_clip_resize_crop
from chexbench_llava_convert.reference import check_conversion, load_trunk, preprocess
from click.testing import CliRunner
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("chexbench-llava-convert: error:")]


def test_converted_model_equals_the_reference_forward(tiny_llava_rad, converted_tiny_llava_rad):
    deltas = check_conversion(converted_tiny_llava_rad, tiny_llava_rad.llava_rad, tiny_llava_rad.vicuna)
    print("converted (adapter) vs reference:", deltas)
    assert deltas["pixels"] == 0.0
    assert deltas["tower_features"] < 1e-5 * deltas["tower_features_scale"]
    assert deltas["image_features"] < 1e-5 * deltas["image_features_scale"]
    assert deltas["logits"] < 1e-4 * max(1.0, deltas["logits_scale"])
    assert deltas["image_token_logit"] == 0.0


@pytest.mark.slow
def test_real_size_tower_equals_the_reference(tmp_path):
    """LLaVA-Rad's tower size (ViT-B/14 at 518 px: 12 layers, 12 heads, 1369 image tokens) with a small Llama."""
    from chexbench_llava_convert.tiny import write_tiny_llava_rad

    tiny = write_tiny_llava_rad(tmp_path, vision_hidden=768, vision_layers=12, image_size=518, text_hidden=128)
    result = convert(tiny.llava_rad, tiny.vicuna, tmp_path / "out", dtype="float32")
    assert (result.record["vision_heads_used"], result.record["num_image_tokens"]) == (12, 1369)
    deltas = check_conversion(result.out, tiny.llava_rad, tiny.vicuna)
    print("ViT-B/14 518 px vs reference:", deltas)
    assert deltas["pixels"] == 0.0
    assert deltas["tower_features"] < 1e-5 * deltas["tower_features_scale"]
    assert deltas["image_features"] < 1e-5 * deltas["image_features_scale"]
    assert deltas["logits"] < 1e-4 * max(1.0, deltas["logits_scale"])


def test_check_conversion_cli_passes_and_fails(tiny_llava_rad, converted_tiny_llava_rad, tmp_path):
    picture = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (67, 51), dtype=np.uint8), mode="L").save(picture)
    ok = run_cli(
        "check-conversion",
        "--converted",
        converted_tiny_llava_rad,
        "--llava-rad",
        tiny_llava_rad.llava_rad,
        "--vicuna",
        tiny_llava_rad.vicuna,
        "--image",
        picture,
    )
    assert ok.exit_code == 0, ok.output
    assert re.search(r"^logits: max \|Δ\| \S+", ok.output, re.M) and "ok:" in ok.output

    broken = tmp_path / "no-adapter"
    shutil.copytree(converted_tiny_llava_rad, broken)
    shutil.rmtree(broken / "adapter")  # the LoRA forgotten: the reference (LoRA merged) must notice
    bad = run_cli(
        "check-conversion",
        "--converted",
        broken,
        "--llava-rad",
        tiny_llava_rad.llava_rad,
        "--vicuna",
        tiny_llava_rad.vicuna,
    )
    assert bad.exit_code == 3
    assert len(error_lines(bad)) == 1 and "logits max |Δ|" in error_lines(bad)[0]


def test_merge_equals_the_adapter(tiny_llava_rad, converted_tiny_llava_rad, tmp_path):
    from peft import PeftModel
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    merged = convert(
        tiny_llava_rad.llava_rad, tiny_llava_rad.vicuna, tmp_path / "merged", merge=True, dtype="float32"
    ).out
    assert not (merged / "adapter").exists()
    deltas = check_conversion(merged, tiny_llava_rad.llava_rad, tiny_llava_rad.vicuna)
    assert deltas["logits"] < 1e-4 * max(1.0, deltas["logits_scale"])

    processor = AutoProcessor.from_pretrained(merged, backend="pil")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (42, 42), dtype=np.uint8))
    batch = processor(text="<image>\nfindings:", images=image, return_tensors="pt")
    with torch.no_grad():
        one = LlavaForConditionalGeneration.from_pretrained(merged).eval()(**batch).logits
        base = LlavaForConditionalGeneration.from_pretrained(converted_tiny_llava_rad)
        plain = base(**batch).logits
        two = PeftModel.from_pretrained(base, converted_tiny_llava_rad / "adapter").eval()(**batch).logits
    scale = one.abs().max().item()
    print("merge vs adapter max |Δ| logits:", (one - two).abs().max().item(), "on logits up to", scale)
    # float32 rounds every value to a relative 2^-23 (eps): the merged weights (W + s·BA rounded once) and the
    # adapter's separate products round differently, and those roundings add up through the layers' sums, so the
    # bound is relative to the logits' scale, not absolute. Measured: 7 eps of a logit of 13; 64 eps leaves room for
    # other CPUs' kernels, while a merge rounded through float16 lands 100x above (1e-2) and a missing LoRA above 1e-2
    assert (one - two).abs().max() < 64 * torch.finfo(torch.float32).eps * scale
    assert (one - plain).abs().max() > 1e-2  # the LoRA changes the output, so the agreement above means something


def _expected_tensors(tiny) -> dict:
    """The converted model's tensors restated from the README's map, one entry fed by every input tensor (the trunk,
    the projector, Vicuna; only the open_clip keys LLaVA-Rad never uses are left out, and they are listed)."""
    clip = torch.load(tiny.llava_rad / "biomedclipcxr_518_checkpoint.pt", weights_only=True)["state_dict"]
    trunk = load_trunk(tiny.llava_rad / "biomedclipcxr_518_checkpoint.pt")
    projector = torch.load(tiny.llava_rad / "non_lora_trainables.bin", weights_only=True)
    from safetensors.torch import load_file

    vicuna = load_file(tiny.vicuna / "model.safetensors")
    names = {
        "cls_token": "embeddings.cls_token",
        "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    block = {
        "norm1": "norm1",
        "norm2": "norm2",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
        "attn.proj": "attention.o_proj",
    }
    out = {}
    for key, value in trunk.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias|gamma)", key)
        if not m:
            out[f"model.vision_tower.{names[key]}"] = value
            continue
        layer, module, kind = m.groups()
        prefix = f"model.vision_tower.encoder.layer.{layer}."
        if module == "attn.qkv":
            for part, name in zip(value.chunk(3), ("q_proj", "k_proj", "v_proj"), strict=True):
                out[f"{prefix}attention.{name}.{kind}"] = part
        elif kind == "gamma":
            out[f"{prefix}layer_scale{module[-1]}.lambda1"] = value
        else:
            out[f"{prefix}{block[module]}.{kind}"] = value
    out["model.vision_tower.embeddings.mask_token"] = torch.zeros(1, trunk["cls_token"].shape[-1])
    for key, value in projector.items():
        index, kind = re.search(r"mm_projector\.(\d)\.(\w+)$", key).groups()
        out[f"model.multi_modal_projector.linear_{1 if index == '0' else 2}.{kind}"] = value.float()
    for key, value in vicuna.items():
        if key in ("model.embed_tokens.weight", "lm_head.weight"):
            value = torch.cat([value, torch.zeros(1, value.shape[1], dtype=value.dtype)])
        out[key if key == "lm_head.weight" else "model.language_model." + key[len("model.") :]] = value.float()
    unused = {k for k in clip if not k.startswith("module.visual.trunk.")}
    assert unused == {
        "module.visual.head.proj.weight",
        "module.logit_scale",
        "module.text.proj.weight",
        "module.text.transformer.embeddings.word_embeddings.weight",
    }
    return out


def test_every_tensor_is_accounted_for(tiny_llava_rad, converted_tiny_llava_rad):
    from peft import PeftModel
    from transformers import LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(converted_tiny_llava_rad, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    expected = _expected_tensors(tiny_llava_rad)
    state = model.state_dict()
    assert set(state) == set(expected)  # nothing in the output left random, nothing invented
    for key, value in expected.items():
        assert torch.equal(state[key], value.float()), key
    record = json.loads((converted_tiny_llava_rad / RECORD).read_text())
    assert record["ignored_input_keys"]["vicuna"] == []
    assert record["image_token_id"] == model.config.image_token_id == tiny_llava_rad_vocab(tiny_llava_rad)

    adapter = torch.load(tiny_llava_rad.llava_rad / "adapter_model.bin", weights_only=True)
    peft_model = PeftModel.from_pretrained(model, converted_tiny_llava_rad / "adapter")
    loaded = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert len(loaded) == len(adapter)  # every LoRA tensor has its place, none is left at PEFT's init
    for key, value in adapter.items():
        name = key.replace("base_model.model.model.", "base_model.model.model.language_model.").replace(
            ".weight", ".default.weight"
        )
        assert torch.equal(loaded[name].detach(), value.float()), key
    assert not any("vision_tower" in n or "multi_modal_projector" in n for n in loaded)


def tiny_llava_rad_vocab(tiny) -> int:
    return json.loads((tiny.vicuna / "config.json").read_text())["vocab_size"]


@pytest.mark.parametrize("width,height", [(518, 518), (600, 700), (700, 600), (540, 1002), (521, 1200), (300, 301)])
def test_image_processor_reproduces_open_clip(width, height):
    """Against `reference.preprocess` (PIL + torchvision's resize/crop rules): exact with open_clip_resize_crop first;
    the bare processor is exact too unless the crop leftover is 4k+3 (its crop floors where torchvision rounds)."""
    rng = np.random.default_rng(width * height)
    grey = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), mode="L")
    processor = image_processor(518)
    reference = preprocess(grey, 518)
    pre_cropped = torch.from_numpy(processor(open_clip_resize_crop(grey, 518), return_tensors="np")["pixel_values"][0])
    assert reference.shape == (3, 518, 518)
    assert torch.allclose(pre_cropped, reference, atol=1e-6)
    bare = torch.from_numpy(processor(grey, return_tensors="np")["pixel_values"][0])
    short, long = min(width, height), max(width, height)
    leftover = int(518 * long / short) - 518
    assert torch.allclose(bare, reference, atol=1e-6) == (leftover % 4 != 3)


def test_processor_of_the_converted_folder(converted_tiny_llava_rad):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(converted_tiny_llava_rad, backend="pil")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 61, 3), dtype=np.uint8))
    batch = processor(text="<image>\nfindings:", images=image, return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((batch["input_ids"] == image_id).sum()) == (42 // 14) ** 2
    assert torch.allclose(batch["pixel_values"][0], preprocess(image, 42), atol=1e-6)


def _mutate(tiny, tmp_path, edit):
    root = tmp_path / "inputs"
    shutil.copytree(tiny.llava_rad, root / "llava-rad")
    shutil.copytree(tiny.vicuna, root / "vicuna")
    edit(root / "llava-rad")
    return root / "llava-rad", root / "vicuna"


def _edit_torch(name, change):
    def edit(folder):
        state = torch.load(folder / name, weights_only=True)
        change(state.get("state_dict", state))
        torch.save(state, folder / name)

    return edit


def _rename(old, new):
    return lambda s: s.__setitem__(new, s.pop(old))


def _edit_config(folder):
    config = json.loads((folder / "config.json").read_text())
    config["mm_projector_type"] = "linear"
    (folder / "config.json").write_text(json.dumps(config))


BAD_INPUTS = {
    "missing projector file": (lambda f: (f / "non_lora_trainables.bin").unlink(), 5, ["non_lora_trainables.bin"]),
    "wrong tower key": (
        _edit_torch(
            "biomedclipcxr_518_checkpoint.pt",
            _rename("module.visual.trunk.blocks.1.attn.qkv.weight", "module.visual.trunk.blocks.1.attn.qkvx.weight"),
        ),
        3,
        ["biomedclipcxr_518_checkpoint.pt", "blocks.1.attn.qkv"],
    ),
    "missing tower key": (
        _edit_torch("biomedclipcxr_518_checkpoint.pt", lambda s: s.pop("module.visual.trunk.blocks.2.ls2.gamma")),
        3,
        ["biomedclipcxr_518_checkpoint.pt", "visual.trunk.blocks.2.ls2.gamma"],
    ),
    "projector shape": (
        _edit_torch(
            "non_lora_trainables.bin",
            lambda s: s.__setitem__(
                "base_model.model.model.mm_projector.0.weight", torch.zeros(64, 96, dtype=torch.float16)
            ),
        ),
        3,
        ["non_lora_trainables.bin", "linear_1.weight", "(64, 96)"],
    ),
    "unknown projector key": (
        _edit_torch(
            "non_lora_trainables.bin",
            lambda s: s.__setitem__("base_model.model.model.embed_tokens.weight", torch.zeros(2, 2)),
        ),
        3,
        ["non_lora_trainables.bin", "model.embed_tokens.weight"],
    ),
    "LoRA target not found": (
        _edit_torch(
            "adapter_model.bin",
            lambda s: [
                _rename(
                    f"base_model.model.model.layers.1.mlp.up_proj.lora_{p}.weight",
                    f"base_model.model.model.layers.9.mlp.up_proj.lora_{p}.weight",
                )(s)
                for p in "AB"
            ],
        ),
        3,
        ["adapter_model.bin", "layers.9.mlp.up_proj", "not found"],
    ),
    "LoRA half missing": (
        _edit_torch(
            "adapter_model.bin", lambda s: s.pop("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")
        ),
        3,
        ["adapter_model.bin", "model.layers.0.self_attn.k_proj has no lora_B"],
    ),
    "projector type": (_edit_config, 3, ["config.json", "mm_projector_type"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(tiny_llava_rad, tmp_path, case):
    edit, code, words = BAD_INPUTS[case]
    llava_rad, vicuna = _mutate(tiny_llava_rad, tmp_path, edit)
    out = tmp_path / "results" / "converted"
    result = run_cli("convert", "--llava-rad", llava_rad, "--vicuna", vicuna, "--out", out, "--dtype", "float32")
    assert result.exit_code == code, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()
    assert not list(out.parent.glob(".*")) if out.parent.exists() else True  # no temporary folder left behind


def test_rerun_reuses_and_a_changed_input_reconverts(tiny_llava_rad, tmp_path):
    llava_rad, vicuna = _mutate(tiny_llava_rad, tmp_path, lambda f: None)
    out = tmp_path / "out"
    args = ["convert", "--llava-rad", llava_rad, "--vicuna", vicuna, "--out", out, "--dtype", "float16"]
    first = run_cli(*args)
    assert first.exit_code == 0 and f"converted: {out}" in first.output, first.output
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    record = json.loads((out / RECORD).read_text())
    assert record["dtype"] == "float16" and record["merge"] is False
    assert set(record["inputs"]) >= {"adapter", "non_lora_trainables", "vision_checkpoint", "vicuna/model.safetensors"}

    again = run_cli(*args)
    assert again.exit_code == 0 and f"up to date: {out}" in again.output
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp

    (out / "adapter" / "adapter_model.safetensors").unlink()  # a damaged output is never reused
    repaired = run_cli(*args)
    assert repaired.exit_code == 0 and f"converted: {out}" in repaired.output
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert set(json.loads((out / RECORD).read_text())["outputs"]) >= {"config.json", "adapter/adapter_config.json"}

    _edit_torch("non_lora_trainables.bin", lambda s: s["base_model.model.model.mm_projector.2.bias"].add_(1))(llava_rad)
    changed = run_cli(*args)
    assert changed.exit_code == 0 and f"converted: {out}" in changed.output
    new_record = json.loads((out / RECORD).read_text())
    assert new_record["inputs"]["non_lora_trainables"]["sha256"] != record["inputs"]["non_lora_trainables"]["sha256"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["inputs", "out"])  # nothing old left aside


def test_refuses_to_replace_a_folder_that_is_not_a_conversion(tiny_llava_rad, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run_cli(
        "convert", "--llava-rad", tiny_llava_rad.llava_rad, "--vicuna", tiny_llava_rad.vicuna, "--out", out
    )
    assert result.exit_code == 3 and "is not a chexbench conversion" in error_lines(result)[0]
    assert (out / "notes.txt").read_text() == "keep me"
