"""`chexbench-bench assets plan`: what a registry model's run loads, with each asset's status; the registry's fields
(file lists, sizes, the comment-keeping writer) that plan and fetch rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from chexbench_bench.cli import main
from chexbench_bench.fetch import RemoteFile, select_files
from chexbench_bench.plan import STAGES, build_plan
from chexbench_bench.registry import declared_bytes, load_registry, set_fields
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_path
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]

REGISTRY = """\
generators:
  gen:
    source: a pipeline
    repo: org/gen
    revision: main
    files: [model_index.json]
    local_path: ckpt/gen
    base: base
    sha256: null
    size: ≈ 2 GB
    licence: MIT
    gated: false
  by-import:
    source: images come in with chexbench-generate import
    local_path: null
    sha256: null
    licence: own
    gated: false
bases:
  base:
    source: a gated base
    repo: org/base
    revision: main
    file: base.safetensors
    local_path: ckpt/base.safetensors
    sha256: {base_sha}
    licence: Community
    gated: true
extractors:
  good:
    source: pinned and intact
    url: https://example.org/good.pth
    local_path: ckpt/good.pth
    sha256: {good_sha}
    size: 4
    stages: [embed, privacy]
    licence: MIT
    gated: false
  loose:
    source: present, never pinned
    repo: org/loose
    revision: main
    file: loose.pth
    local_path: ckpt/loose.pth
    sha256: null
    stages: [align]
    optional: nothing breaks without it
    licence: Apache-2.0
    gated: false
  hand:
    source: only by hand
    local_path: ckpt/hand.bin
    sha256: null
    stages: [classify]
    licence: unknown
    gated: false
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "good.pth").write_bytes(b"good")
    (tmp_path / "ckpt" / "loose.pth").write_bytes(b"loose weights")
    (tmp_path / "ckpt" / "base.safetensors").write_bytes(b"changed since pinned")
    registry = tmp_path / "models.yml"
    registry.write_text(REGISTRY.format(good_sha=sha256_path(tmp_path / "ckpt" / "good.pth"), base_sha="ab" * 32))
    return registry


def plan(registry: Path, *args: str):
    return CliRunner().invoke(main, ["assets", "plan", *args, "--registry", str(registry)], catch_exceptions=False)


def test_plan_lists_each_asset_once_with_its_stages_status_and_size(world):
    result = plan(world, "gen", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {a["id"]: a for a in data["assets"]}
    assert list(rows) == ["gen", "base", "good", "loose", "hand"]  # by first stage: generate, embed, align, classify
    assert rows["gen"]["stages"] == ["generate"] and rows["good"]["stages"] == ["embed", "privacy"]
    assert {i: r["status"] for i, r in rows.items()} == {
        "gen": "missing",
        "base": "hash mismatch",
        "good": "present",
        "loose": "unpinned",
        "hand": "missing",
    }
    assert (rows["good"]["size_bytes"], rows["good"]["size_exact"]) == (4, True)
    assert (rows["loose"]["size_bytes"], rows["loose"]["size_exact"]) == (len(b"loose weights"), True)
    assert (rows["gen"]["size_bytes"], rows["gen"]["size_exact"]) == (2 * 10**9, False)
    assert rows["gen"]["fetch"] == "chexbench-bench assets fetch gen"
    assert rows["hand"]["fetch"].startswith("download it by hand: only by hand")
    assert rows["base"]["gated"] is True and rows["loose"]["optional"] == "nothing breaks without it"
    assert data["to_fetch_bytes"] == 2 * 10**9 and data["to_fetch_exact"] is False
    assert data["fetch_command"] == "make weights MODEL=gen  (= chexbench-bench assets fetch gen)"


def test_plan_table_says_what_to_do_about_each_status(world):
    result = plan(world, "gen")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["asset", "needed", "by", "size", "gate", "status"]
    assert lines[2].split() == ["gen", "generate", "≈", "2", "GB", "-", "missing"]
    assert lines[3].split()[-3:] == ["gated", "hash", "mismatch"]
    text = result.stdout
    assert "hash mismatch: base:" in text and "move it away, then fetch it" in text
    assert "unpinned: loose: chexbench-bench assets pin loose" in text
    assert "by hand: hand: only by hand" in text
    assert "  base: https://huggingface.co/org/base" in text
    assert "  good, MIT" not in text and "  gen, good: MIT" in text


def test_plan_refuses_the_demo_and_what_is_not_a_generator(world):
    assert "downloads nothing" in plan(world, "demo").stderr
    result = plan(world, "good")
    assert result.exit_code == 3 and "'good' is not a generator of the registry; known: by-import, gen" in result.stderr


@pytest.mark.parametrize("model", ["sana", "pixart_sigma", "SD-V3-5", "flux", "radedit"])
def test_the_repository_plan_covers_every_stage_that_loads_weights(model):
    rows = build_plan(load_registry(REPO / "assets" / "models.yml"), model, REPO)
    stages = {s for r in rows for s in r.stages}
    assert stages == {"generate", "embed", "align", "privacy", "classify", "llava-report"}
    ids = [r.asset.id for r in rows]
    for needed in ("raddino", "dinov2", "clip", "biovil-t", "reid", "resnet50-imagenet", "llava-rad", "vicuna-7b"):
        assert needed in ids
    assert ids[0] == model and all(r.stages[0] == "generate" for r in rows[: ids.index("inception")])
    # FD_DINOv2/KD_DINOv2 and CMMD: listed, fetched by make weights, optional for a run
    extra = {r.asset.id: r for r in rows if r.asset.id in ("dinov2", "clip")}
    assert all(
        r.stages == ("embed",) and r.asset.optional and r.needs_fetch == (r.status == "missing") for r in extra.values()
    )


def test_the_repository_registry_is_fetchable_as_declared():
    assets = load_registry(REPO / "assets" / "models.yml")
    for asset in assets.values():
        assert set(asset.stages) <= set(STAGES), asset.id
        declared_bytes(asset)  # parses
        if asset.fetchable:
            assert asset.local_path.startswith("assets/checkpoints/"), asset.id
            assert asset.revision, f"{asset.id}: a hub asset names its revision"
            assert asset.licence, asset.id
        if asset.url:
            assert asset.url.startswith("https://") and asset.sha256_prefix in asset.url
    assert assets["sana"].revision == "6c8989d92e75fbcfc91a82c3570389293867ad6a"
    assert assets["pixart_sigma"].revision == "ab837e1d3d7b5aeccb4dcbc4d3abcf1c2ed24727"
    assert (assets["dinov2"].repo, assets["dinov2"].revision) == (
        "facebook/dinov2-large",
        "47b73eefe95e8d44ec3623f8890bd894b6ea2d6c",
    )
    assert (assets["clip"].repo, assets["clip"].revision) == (
        "openai/clip-vit-large-patch14-336",
        "ce19dc912ca5cd21c8a653c79e251e808ccabcd1",
    )
    assert [a.id for a in assets.values() if a.local_path and not a.fetchable and a.kind != "package"] == []


def test_path_optional_names_what_a_missing_asset_costs_and_still_refuses_a_changed_one(world):
    def path(asset_id):
        args = ["assets", "path", "--optional", asset_id, "--registry", str(world)]
        return CliRunner().invoke(main, args, catch_exceptions=False)

    present = path("loose")
    assert (present.exit_code, present.stdout) == (0, "ckpt/loose.pth\n")
    Path("ckpt/loose.pth").unlink()
    missing = path("loose")
    assert (missing.exit_code, missing.stdout) == (0, "")
    assert missing.stderr == (
        f"loose: not at {Path.cwd() / 'ckpt' / 'loose.pth'}: nothing breaks without it "
        "(chexbench-bench assets fetch loose)\n"
    )
    changed = path("base")  # present but not what the registry pinned: an error, not a skipped metric
    assert changed.exit_code == 5 and "does not match the pinned sha256" in changed.stderr and changed.stdout == ""


def test_set_fields_keeps_comments_quotes_what_yaml_would_misread_and_adds_missing_keys(tmp_path):
    registry = tmp_path / "models.yml"
    registry.write_text(
        "# head\nbases:\n  a:\n    revision: main  # the branch\n    sha256: null\n  b:\n    revision: main\n"
    )
    set_fields(registry, "a", {"revision": "1234567890" * 4, "sha256": "ab" * 32, "size": 1234})
    text = registry.read_text()
    assert "    revision: '1234567890123456789012345678901234567890'  # the branch\n" in text
    assert text.startswith("# head\n") and text.endswith("    size: 1234\n  b:\n    revision: main\n")
    raw = yaml.safe_load(text)["bases"]
    assert raw["a"] == {"revision": "1234567890" * 4, "sha256": "ab" * 32, "size": 1234}
    assert raw["b"] == {"revision": "main"}


def test_a_sha256_yaml_reads_as_a_number_is_refused_with_the_fix(tmp_path):
    registry = tmp_path / "models.yml"
    registry.write_text(f"bases:\n  a:\n    local_path: x\n    sha256: {'0' * 64}\n")
    with pytest.raises(BadInputError, match="a: sha256: must be 64 hex digits, or null"):
        load_registry(registry)


def _asset(tmp_path: Path, **fields):
    registry = tmp_path / "models.yml"
    registry.write_text(yaml.safe_dump({"bases": {"a": {"local_path": "x", "repo": "org/a", **fields}}}))
    return load_registry(registry)["a"]


LISTING = [
    RemoteFile(p, 1, None, None)
    for p in ("model_index.json", "unet/config.json", "unet/w.bin", "unet/w.safetensors", "vae/sub/deep.json")
]


def test_select_files_takes_first_alternatives_per_segment_globs_and_optional_matches(tmp_path):
    asset = _asset(
        tmp_path,
        files=["model_index.json", "unet/*.json", "unet/w.safetensors | unet/w.bin"],
        optional_files=["vae/*", "feature_extractor/*"],
    )
    chosen = [f.path for f in select_files(asset, LISTING, "org/a at abc")]
    assert chosen == ["model_index.json", "unet/config.json", "unet/w.safetensors"]  # vae/* does not reach sub/
    missing = _asset(tmp_path, files=["text_encoder/*.safetensors"], unverified="names guessed")
    with pytest.raises(MissingResourceError) as raised:
        select_files(missing, LISTING, "org/a at abc")
    assert str(raised.value) == (
        "a: no file of org/a at abc matches 'text_encoder/*.safetensors' (files: in the registry) "
        "(the registry marks it unverified: names guessed)"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "https://x/y", "file": "y"}, "has both repo: and url:"),
        ({"files": ["a"], "file": "b"}, "either files: (a folder) or file: (one file)"),
        ({}, "either files: (a folder) or file: (one file)"),
        ({"file": "w", "size": "lots"}, "size 'lots' is neither a byte count"),
    ],
)
def test_malformed_entries_are_named(tmp_path, fields, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _asset(tmp_path, **fields)
