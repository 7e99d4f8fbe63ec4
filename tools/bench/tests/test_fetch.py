"""`chexbench-bench assets fetch` and `make weights` against a loopback hub (127.0.0.1 only) with the real
huggingface_hub client. Each command runs in its own process: huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and
HF_HOME at import, and the tests set HF_HUB_OFFLINE=1 as `make test` does (fetch must lift it for itself)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chexbench_common.hashing import sha256_tree
from loopback_hub import LoopbackHub, sha256

BENCH = Path(sys.executable).parent / "chexbench-bench"
REPO_ROOT = Path(__file__).resolve().parents[3]
MiB = 1 << 20
PIPE_REPO = "test-org/tiny-pipeline"
LORA_REPO = "test-org/gated-lora"
REID_REPO = "test-org/reid"
FID_NAME = "pt_inception-2015-12-05-test.pth"


def _bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


PIPE_FILES = {
    "model_index.json": b'{"_class_name": "SanaPipeline"}\n',
    "README.md": b"# not loaded by any stage\n",
    "transformer/config.json": b'{"layers": 2}\n',
    # large enough that the client writes a first chunk (10 MiB) before a cut connection, so it resumes with Range
    "transformer/diffusion_pytorch_model.safetensors": _bytes(1, 12 * MiB),
    "transformer/diffusion_pytorch_model.bin": _bytes(2, 4096),  # the alternative not taken
    "transformer/diffusion_pytorch_model.fp16.safetensors": _bytes(3, 4096),  # a variant the stage does not load
    "tokenizer/tokenizer_config.json": b'{"model_max_length": 8}\n',
    "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nlung\n",
}
WANTED = sorted(
    ["model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors"]
    + ["tokenizer/tokenizer_config.json", "tokenizer/vocab.txt"]
)
LORA = _bytes(4, 3000)
REID = _bytes(5, 5000)
FID = _bytes(6, 3 * MiB)

REGISTRY = """\
# test registry: comments must survive a pin
generators:
  tiny:
    source: a tiny pipeline on the loopback hub
    repo: {pipe_repo}
    revision: {pipe_revision}  # the branch; fetch pins the commit
    files:
      - model_index.json
      - transformer/config.json
      - transformer/diffusion_pytorch_model.safetensors | transformer/diffusion_pytorch_model.bin
      - tokenizer/*
    optional_files:
      - vae/*
    local_path: {root}/ckpt/tiny
    sha256: {pipe_sha256}
    size: ≈ 12 MB
    licence: MIT
    gated: false
  tiny-lora:
    source: a LoRA in a gated repository
    repo: {lora_repo}
    revision: main
    file: lora.safetensors
    local_path: {root}/ckpt/lora/tiny_lora.safetensors
    base: tiny
    sha256: null
    licence: research only
    gated: true
extractors:
  fid:
    source: a plain https download
    url: {fid_url}
    sha256_prefix: {fid_prefix}
    local_path: {root}/ckpt/{fid_name}
    sha256: null
    size: ≈ 3 MB
    stages: [embed]
    licence: Apache-2.0
    gated: false
  reid:
    source: one file of a hub repository
    repo: {reid_repo}
    revision: main
    file: weights.pth
    local_path: {root}/ckpt/reid.pth
    sha256: null
    stages: [privacy]
    licence: unknown
    gated: false
"""


@pytest.fixture
def hub():
    with LoopbackHub() as server:
        server.pipe_commit = server.add_repo(PIPE_REPO, PIPE_FILES)
        server.add_repo(LORA_REPO, {"lora.safetensors": LORA, "README.md": b"gated\n"}, gated=True)
        server.add_repo(REID_REPO, {"weights.pth": REID})
        server.fid_url = server.add_plain(FID_NAME, FID)
        yield server


def write_registry(tmp_path: Path, hub: LoopbackHub, **overrides) -> Path:
    values = {
        "pipe_repo": PIPE_REPO,
        "pipe_revision": "main",
        "pipe_sha256": "null",
        "lora_repo": LORA_REPO,
        "reid_repo": REID_REPO,
        "fid_url": hub.fid_url,
        "fid_prefix": sha256(FID)[:8],
        "fid_name": FID_NAME,
        "root": tmp_path,
        **overrides,
    }
    registry = tmp_path / "models.yml"
    registry.write_text(REGISTRY.format(**values))
    return registry


def hub_env(hub: LoopbackHub, tmp_path: Path, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("HF_")}
    env.update(
        HF_HUB_OFFLINE="1",  # as in `make test`: fetch alone lifts it, for its own downloads
        TRANSFORMERS_OFFLINE="1",
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf-home"),  # the hub cache and token file of this test only
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1",
        CHEXBENCH_PROGRESS="log",
    )
    if token:
        env["HF_TOKEN"] = token
    return env


def fetch(hub, tmp_path, registry, *ids, token=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BENCH), "assets", "fetch", *ids, "--registry", str(registry)],
        cwd=tmp_path,
        env=hub_env(hub, tmp_path, token),
        capture_output=True,
        text=True,
        timeout=180,
    )


def errors(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def leftovers(tmp_path: Path) -> list[str]:
    """Anything under ckpt/ (targets, staging folders, parts)."""
    ckpt = tmp_path / "ckpt"
    return sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*")) if ckpt.exists() else []


def entry(registry: Path, asset_id: str) -> dict:
    raw = yaml.safe_load(registry.read_text())
    return next(section[asset_id] for section in raw.values() if asset_id in section)


def blob_gets(hub: LoopbackHub, content: bytes):
    return [r for r in hub.requests_for("cdn", "GET") if r.path == f"/blobs/{sha256(content)}"]


def test_fetch_takes_the_declared_files_verifies_pins_and_then_finds_them_present(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    result = fetch(hub, tmp_path, registry, "tiny")
    assert result.returncode == 0, result.stderr
    assert not errors(result)
    target = tmp_path / "ckpt" / "tiny"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == WANTED  # no README, no .bin alternative, no fp16 variant, no client bookkeeping
    for name in WANTED:
        assert (target / name).read_bytes() == PIPE_FILES[name]
    assert [p for p in leftovers(tmp_path) if not p.startswith("tiny")] == []  # no staging folder left
    pinned = entry(registry, "tiny")
    assert pinned["sha256"] == sha256_tree(target)
    assert pinned["size"] == sum(len(PIPE_FILES[n]) for n in WANTED)
    assert pinned["revision"] == hub.pipe_commit
    text = registry.read_text()
    assert text.startswith("# test registry: comments must survive a pin")
    assert f"revision: {hub.pipe_commit}  # the branch; fetch pins the commit" in text
    gets = {r.path for r in hub.requests_for("hub", "GET")}
    assert not any("README.md" in p or ".bin" in p or "fp16" in p for p in gets)
    assert all(r.authorization is None for r in hub.requests_for("cdn"))

    before = len(hub.requests)
    again = fetch(hub, tmp_path, registry, "tiny")
    assert again.returncode == 0 and "tiny: present" in again.stderr and "sha256 matches" in again.stderr
    assert len(hub.requests) == before  # a verified copy is not fetched again


def test_a_download_cut_mid_body_resumes_with_a_range_request(hub, tmp_path):
    weights = PIPE_FILES["transformer/diffusion_pytorch_model.safetensors"]
    hub.cut_once[sha256(weights)] = 11 * MiB
    registry = write_registry(tmp_path, hub)
    result = fetch(hub, tmp_path, registry, "tiny")
    assert result.returncode == 0, result.stderr
    first, second = blob_gets(hub, weights)
    assert first.range is None
    start = int(second.range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 11 * MiB  # the second attempt asks only for what the first did not write
    assert (tmp_path / "ckpt/tiny/transformer/diffusion_pytorch_model.safetensors").read_bytes() == weights
    assert entry(registry, "tiny")["sha256"] == sha256_tree(tmp_path / "ckpt" / "tiny")


def test_a_wrong_pinned_hash_is_refused_and_nothing_is_left(hub, tmp_path):
    registry = write_registry(tmp_path, hub, pipe_sha256="ab" * 32)
    before = registry.read_text()
    result = fetch(hub, tmp_path, registry, "tiny")
    assert result.returncode == 5
    (line,) = errors(result)
    assert "does not match the pinned sha256 abababababab" in line and "nothing was kept" in line
    assert leftovers(tmp_path) == []
    assert registry.read_text() == before


def test_bytes_that_differ_from_the_hubs_digest_are_refused_and_nothing_is_left(hub, tmp_path):
    hub.corrupt(PIPE_REPO, "transformer/diffusion_pytorch_model.safetensors")
    registry = write_registry(tmp_path, hub)
    before = registry.read_text()
    result = fetch(hub, tmp_path, registry, "tiny")
    assert result.returncode == 5
    (line,) = errors(result)
    assert "transformer/diffusion_pytorch_model.safetensors sha256" in line and "differs from the hub's" in line
    assert leftovers(tmp_path) == []
    assert registry.read_text() == before


def test_a_gated_repository_says_what_to_do_in_one_line_and_hf_token_opens_it(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    refused = fetch(hub, tmp_path, registry, "tiny-lora")
    assert refused.returncode == 5
    (line,) = errors(refused)
    assert f"{LORA_REPO} is gated: accept its terms at {hub.endpoint}/{LORA_REPO}" in line and "set HF_TOKEN" in line
    assert any(r.path.startswith(f"/{LORA_REPO}/resolve/") for r in hub.requests_for("hub", "HEAD"))
    assert leftovers(tmp_path) == []
    fetched = fetch(hub, tmp_path, registry, "tiny-lora", token=hub.token)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "ckpt" / "lora" / "tiny_lora.safetensors").read_bytes() == LORA
    assert entry(registry, "tiny-lora")["sha256"] == sha256(LORA)
    assert all(r.authorization is None for r in hub.requests_for("cdn"))  # the token stays on the hub


def test_a_wrong_revision_is_one_line(hub, tmp_path):
    registry = write_registry(tmp_path, hub, pipe_revision="deadbeef" * 5)
    before = registry.read_text()
    result = fetch(hub, tmp_path, registry, "tiny")
    assert result.returncode == 5
    (line,) = errors(result)
    assert f"revision {'deadbeef' * 5} not found in {PIPE_REPO}" in line and "fix revision:" in line
    assert leftovers(tmp_path) == [] and registry.read_text() == before


def test_a_plain_https_file_continues_an_interrupted_part_and_checks_the_publishers_prefix(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    part = tmp_path / "ckpt" / f".{FID_NAME}.fetch" / "data" / f"{FID_NAME}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FID[: MiB + 7])  # what an interrupted fetch left
    result = fetch(hub, tmp_path, registry, "fid")
    assert result.returncode == 0, result.stderr
    (get,) = blob_gets(hub, FID)
    assert get.range == f"bytes={MiB + 7}-"
    assert (tmp_path / "ckpt" / FID_NAME).read_bytes() == FID
    assert leftovers(tmp_path) == [FID_NAME]
    assert entry(registry, "fid")["sha256"] == sha256(FID) and entry(registry, "fid")["size"] == len(FID)

    (tmp_path / "ckpt" / FID_NAME).unlink()
    registry = write_registry(tmp_path, hub, fid_prefix="12345678")
    refused = fetch(hub, tmp_path, registry, "fid")
    assert refused.returncode == 5
    (line,) = errors(refused)
    assert "does not start with the publisher's 12345678" in line
    assert leftovers(tmp_path) == []


def test_a_file_already_in_the_hub_cache_is_not_downloaded_again(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    warm = (
        f"from huggingface_hub import hf_hub_download; hf_hub_download({REID_REPO!r}, 'weights.pth', revision='main')"
    )
    env = hub_env(hub, tmp_path) | {"HF_HUB_OFFLINE": "0"}
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, capture_output=True, timeout=60)
    assert len(blob_gets(hub, REID)) == 1
    result = fetch(hub, tmp_path, registry, "reid")
    assert result.returncode == 0, result.stderr
    assert len(blob_gets(hub, REID)) == 1  # copied from the cache under HF_HOME, not downloaded
    assert (tmp_path / "ckpt" / "reid.pth").read_bytes() == REID


def test_make_weights_fetches_every_asset_of_the_run_and_continues_past_a_failure(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    env = hub_env(hub, tmp_path) | {"CHEXBENCH_ASSETS_REGISTRY": str(registry)}
    make = ["make", "--no-print-directory", "-o", "setup", "weights"]
    gated = subprocess.run([*make, "MODEL=tiny-lora"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert gated.returncode != 0
    assert "tiny-lora: " in gated.stderr and "is gated" in gated.stderr and "Traceback" not in gated.stderr
    for asset_id in ("tiny", "fid", "reid"):  # the others were fetched all the same
        assert entry(registry, asset_id)["sha256"] is not None
    env["HF_TOKEN"] = hub.token
    done = subprocess.run([*make, "MODEL=tiny-lora"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert entry(registry, "tiny-lora")["sha256"] == hashlib.sha256(LORA).hexdigest()
    plan = subprocess.run(
        [str(BENCH), "assets", "plan", "tiny-lora"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert plan.returncode == 0 and "nothing to fetch" in plan.stdout
    assert all(line.split()[-1] == "present" for line in plan.stdout.splitlines()[2:6])


# The repositories `make bench MODEL=sana` loads from, as the registry declares them (ids, revisions, tags), holding
# small stand-ins under the file names the registry's patterns expect, plus files no stage loads.
def _stand_ins(names: str, seed: int) -> dict[str, bytes]:
    return {name: _bytes(seed + i, 64 + 97 * i) for i, name in enumerate(names.split())}


REAL_REPOS = {
    "raman07/CheXGenBench-Models-Sana-e20": (
        "model_index.json scheduler/scheduler_config.json text_encoder/config.json "
        "text_encoder/model-00001-of-00002.safetensors text_encoder/model-00002-of-00002.safetensors "
        "text_encoder/model.safetensors.index.json tokenizer/tokenizer.json tokenizer/tokenizer_config.json "
        "transformer/config.json transformer/diffusion_pytorch_model.safetensors vae/config.json "
        "vae/diffusion_pytorch_model.safetensors README.md transformer/diffusion_pytorch_model.fp16.safetensors",
        {"commit": "6c8989d92e75fbcfc91a82c3570389293867ad6a"},
    ),
    "microsoft/rad-dino": (
        "config.json preprocessor_config.json model.safetensors backbone_compatible.safetensors "
        "dino_head.safetensors README.md",
        {},
    ),
    "microsoft/BiomedVLP-BioViL-T": (
        "biovil_t_image_model_proj_size_128.pt config.json vocab.txt tokenizer_config.json pytorch_model.bin "
        "modeling_cxrbert.py configuration_cxrbert.py special_tokens_map.json tokenizer.json README.md",
        {"refs": ("main", "v1.0")},
    ),
    "facebook/dinov2-large": (
        "config.json preprocessor_config.json model.safetensors pytorch_model.bin README.md",
        {"commit": "47b73eefe95e8d44ec3623f8890bd894b6ea2d6c"},
    ),
    # no safetensors copy at the pinned commit: the weights are the PyTorch file
    "openai/clip-vit-large-patch14-336": (
        "config.json preprocessor_config.json pytorch_model.bin tf_model.h5 tokenizer.json vocab.json merges.txt "
        "README.md",
        {"commit": "ce19dc912ca5cd21c8a653c79e251e808ccabcd1"},
    ),
    "raman07/Patient_ReIdentification_MIMIC": ("ResNet-50_epoch11_data_handling_RPN.pth", {}),
    "microsoft/llava-rad": (
        "config.json adapter_config.json adapter_model.bin non_lora_trainables.bin biomedclipcxr_518_checkpoint.pt "
        "biomedclipcxr_518.json",
        {},
    ),
    "lmsys/vicuna-7b-v1.5": (
        "config.json generation_config.json tokenizer.model tokenizer_config.json special_tokens_map.json "
        "pytorch_model-00001-of-00002.bin pytorch_model-00002-of-00002.bin pytorch_model.bin.index.json",
        {},
    ),
    "StanfordAIMI/RRG_scorers": ("chexbert.pth radgraph.tar.gz radgraph-xl.tar.gz", {}),
    "google-bert/bert-base-uncased": (
        "vocab.txt config.json tokenizer_config.json tokenizer.json model.safetensors",
        {},
    ),
}
UNLOADED = {"README.md", "diffusion_pytorch_model.fp16.safetensors", "backbone_compatible.safetensors"}
UNLOADED |= {"dino_head.safetensors", "biomedclipcxr_518.json", "radgraph-xl.tar.gz", "tf_model.h5", "merges.txt"}


def test_make_weights_sana_fetches_verifies_and_pins_what_the_repository_registry_declares(hub, tmp_path):
    text = (REPO_ROOT / "assets" / "models.yml").read_text()
    for seed, (repo_id, (names, extra)) in enumerate(REAL_REPOS.items()):
        hub.add_repo(repo_id, _stand_ins(names, 100 * seed), **extra)
    raw = yaml.safe_load(text)
    for asset_id in ("inception-fid", "resnet50-imagenet"):  # not on the hub: the https files, served here
        url = next(section[asset_id]["url"] for section in raw.values() if asset_id in section)
        content = _bytes(len(url), 2048)
        text = text.replace(url, hub.add_plain(url.rsplit("/", 1)[1], content))
        prefix = next(section[asset_id]["sha256_prefix"] for section in raw.values() if asset_id in section)
        text = text.replace(f"sha256_prefix: {prefix}", f"sha256_prefix: {sha256(content)[:8]}")
    text = text.replace("local_path: assets/", f"local_path: {tmp_path}/assets/")
    registry = tmp_path / "models.yml"
    registry.write_text(text)
    env = hub_env(hub, tmp_path) | {"CHEXBENCH_ASSETS_REGISTRY": str(registry)}

    make = ["make", "--no-print-directory", "-o", "setup", "weights", "MODEL=sana"]
    result = subprocess.run(make, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    plan = subprocess.run(
        [str(BENCH), "assets", "plan", "sana", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    rows = json.loads(plan.stdout)["assets"]
    assert {r["id"]: r["status"] for r in rows} == {r["id"]: "present" for r in rows}  # all fetched and pinned
    assert len(rows) == 14
    pinned = yaml.safe_load(registry.read_text())
    biovil = pinned["bases"]["biovil-t"]
    assert biovil["revision"] == hub.repos["microsoft/BiomedVLP-BioViL-T"].commit  # the tag, pinned to its commit
    assert pinned["generators"]["sana"]["revision"] == "6c8989d92e75fbcfc91a82c3570389293867ad6a"
    fetched = {p.name for p in (tmp_path / "assets").rglob("*") if p.is_file()}
    assert not fetched & UNLOADED
    assert not (tmp_path / "assets/checkpoints/bert-base-uncased/model.safetensors").exists()
    assert sorted(p.name for p in (tmp_path / "assets/checkpoints/sana/transformer").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    # the embed extractors' folders: the config and one weights file each (safetensors where the repository has it)
    assert sorted(p.name for p in (tmp_path / "assets/checkpoints/dinov2-large").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert sorted(p.name for p in (tmp_path / "assets/checkpoints/clip-vit-large-patch14-336").iterdir()) == [
        "config.json",
        "pytorch_model.bin",
    ]
    assert pinned["extractors"]["clip"]["revision"] == "ce19dc912ca5cd21c8a653c79e251e808ccabcd1"
    assert pinned["extractors"]["dinov2"]["sha256"] is not None
    check = subprocess.run(
        [str(BENCH), "assets", "check", "sana"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0 and "sana: all assets present" in check.stderr


def test_an_unreachable_hub_is_one_line_naming_the_endpoint(hub, tmp_path):
    registry = write_registry(tmp_path, hub)
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = hub_env(hub, tmp_path) | {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    result = subprocess.run(
        [str(BENCH), "assets", "fetch", "reid", "--registry", str(registry)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 5
    (line,) = errors(result)
    assert f"reid: cannot download from http://127.0.0.1:{port}" in line and "HF_ENDPOINT" in line
    assert leftovers(tmp_path) == []
