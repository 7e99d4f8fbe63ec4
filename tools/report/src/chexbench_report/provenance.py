"""Provenance from the manifests: model and weights hashes, prompts hash, seeds, tool and library versions, image
digests, host and GPU, and the run time of every stage."""

from __future__ import annotations

import datetime as dt
import hashlib

from .collect import Run, Stage
from .sources import Pictures, recorded_input


def _seconds(manifest: dict) -> float | None:
    try:
        start = dt.datetime.fromisoformat(manifest["started"])
        end = dt.datetime.fromisoformat(manifest["ended"])
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def seeds(params, path: str = "") -> dict[str, object]:
    """Every parameter whose name mentions a seed, by its dotted path in the manifest's params."""
    found = {}
    if isinstance(params, dict):
        for key, value in params.items():
            where = f"{path}.{key}" if path else str(key)
            if "seed" in str(key).lower() and not isinstance(value, dict):
                found[where] = value
            else:
                found |= seeds(value, where)
    return found


def _stage(stage: Stage) -> dict:
    m = stage.manifest
    host = m.get("host", {})
    return {
        "stage": stage.name,
        "status": stage.status,
        "reason": stage.reason,
        "tool_version": m.get("tool_version"),
        "started": m.get("started"),
        "ended": m.get("ended"),
        "seconds": _seconds(m),
        "host": host.get("hostname"),
        "platform": host.get("platform"),
        "gpus": host.get("gpus") or [],
        "weights": {k: v for k, v in (m.get("weights") or {}).items() if isinstance(v, str)},
        "inputs": {k: v.get("sha256") for k, v in (m.get("inputs") or {}).items() if isinstance(v, dict)},
        "seeds": seeds(m.get("params", {})),
        "command": " ".join(str(c) for c in m.get("command", [])),
    }


def image_digest(pictures: Pictures | None) -> dict | None:
    """sha256 over the sorted per-image sha256 values of the synthetic images table: one hash for the image set."""
    if pictures is None or "sha256" not in pictures.synth or pictures.synth.empty:
        return None
    digests = sorted(pictures.synth["sha256"])
    return {"count": len(digests), "sha256": hashlib.sha256("\n".join(digests).encode()).hexdigest()}


def _text(path) -> str | None:
    return str(path) if path is not None else None


def provenance(run: Run, pictures: Pictures | None) -> dict:
    generate = run.stage("generate")
    prompts = generate.manifest.get("inputs", {}).get("prompts", {}) if generate else {}
    libraries: dict[str, set] = {}
    for stage in run.ran:
        for name, version in (stage.manifest.get("libraries") or {}).items():
            libraries.setdefault(name, set()).add(str(version))
    return {
        "model": run.model,
        "run_id": run.run_id,
        "generator_weights": (generate.manifest.get("weights") or {}) if generate else {},
        "prompts": {"path": _text(recorded_input(run, "generate", "prompts")), "sha256": prompts.get("sha256")},
        "images": image_digest(pictures),
        "libraries": {name: sorted(v) for name, v in sorted(libraries.items())},
        "stages": [_stage(s) for s in run.ran],
    }
