from pathlib import Path

import pytest
from chexbench_bench.cli import main
from chexbench_bench.registry import closure, generate_args, load_registry
from chexbench_common.hashing import sha256_tree
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]

REGISTRY = """\
# comment kept
generators:
  tiny:
    source: hf:example/tiny   # why
    revision: null
    local_path: ckpt/tiny/lora.safetensors
    base: tiny-base
    sha256: null
    licence: MIT
    gated: false
bases:
  tiny-base:
    source: hf:example/base
    local_path: ckpt/base
    sha256: null
    licence: MIT
    gated: false
"""


def _invoke(tmp_path, *args):
    registry = tmp_path / "models.yml"
    return CliRunner().invoke(main, ["assets", *args, "--registry", str(registry)], catch_exceptions=False)


def test_repository_registry_is_consistent():
    assets = load_registry(REPO / "assets" / "models.yml")
    for name in ("sana", "pixart_sigma", "SD-V1-4", "SD-V3-5", "lumina", "flux", "radedit", "inception", "raddino"):
        assert name in assets
    for asset in assets.values():
        for needed in ([asset.base] if asset.base else []) + [a for _, a in asset.components]:
            assert needed in assets, f"{asset.id} needs unknown {needed}"
    assert [a.id for a in closure(assets, "radedit")] == ["radedit", "sdxl-vae", "biovil-t"]
    radedit = generate_args(assets, "radedit", REPO)
    assert radedit[:2] == ["--model-path", "assets/checkpoints/radedit"]
    assert "vae=assets/checkpoints/base/sdxl-vae" in radedit
    assert generate_args(assets, "flux", REPO) == [
        "--model-path",
        "assets/checkpoints/base/FLUX.1-dev",
        "--lora",
        "assets/checkpoints/flux/flux_lora.safetensors",
    ]


def test_check_names_every_missing_file_then_passes_and_pins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.yml").write_text(REGISTRY)
    missing = _invoke(tmp_path, "check", "tiny")
    assert missing.exit_code == 5
    lines = missing.stderr.splitlines()
    assert len(lines) == 2 and "tiny: expected at" in lines[0] and "ckpt/tiny/lora.safetensors" in lines[0]
    assert "tiny-base: expected at" in lines[1]
    (tmp_path / "ckpt" / "tiny").mkdir(parents=True)
    (tmp_path / "ckpt" / "tiny" / "lora.safetensors").write_bytes(b"lora")
    (tmp_path / "ckpt" / "base").mkdir()
    (tmp_path / "ckpt" / "base" / "config.json").write_text("{}")
    ok = _invoke(tmp_path, "check", "tiny")
    assert ok.exit_code == 0 and "not pinned" in ok.stderr
    assert _invoke(tmp_path, "pin", "tiny-base").exit_code == 0
    text = (tmp_path / "models.yml").read_text()
    assert f"    sha256: {sha256_tree(tmp_path / 'ckpt' / 'base')}\n" in text
    assert text.startswith("# comment kept") and "# why" in text
    assert load_registry(tmp_path / "models.yml")["tiny"].sha256 is None
    (tmp_path / "ckpt" / "base" / "config.json").write_text('{"changed": 1}')
    changed = _invoke(tmp_path, "check", "tiny")
    assert changed.exit_code == 5 and "does not match the pinned sha256" in changed.stderr


def test_unknown_model_lists_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.yml").write_text(REGISTRY)
    result = _invoke(tmp_path, "check", "nope")
    assert result.exit_code == 3 and "known: tiny, tiny-base" in result.stderr


@pytest.mark.parametrize("asset_id", ["inception"])
def test_packaged_weights_resolve_and_match_their_pin(asset_id, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["assets", "check", asset_id])
    assert result.exit_code == 0, result.stderr
