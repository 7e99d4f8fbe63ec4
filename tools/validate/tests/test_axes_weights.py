"""Where the privacy and alignment relations' weights come from: the privacy stage's own spaces.json for runs that
read shared embeddings, the align manifest's BioViL-T for alignment."""

from __future__ import annotations

import json

from chexbench_common.rundir import StageRun
from chexbench_validate.weights import NONE, REAL, STAND_IN, UNVERIFIED, status_for

MODEL = "demo"


def privacy_run(results, run_id: str, spaces: dict) -> None:
    run = StageRun(results, MODEL, run_id, "privacy", tool_version="test")
    run.start({}, {})
    (run.dir / "spaces.json").write_text(json.dumps(spaces))
    run.finish({"spaces": run.dir / "spaces.json"})


def test_a_privacy_run_without_its_own_embeddings_reports_the_stages_verdict(tmp_path):
    privacy_run(tmp_path, "a", {"inception": {"weights": "real", "weights_evidence": "pinned sha256"}})
    privacy_run(
        tmp_path,
        "b",
        {
            "inception": {"weights": "real", "weights_evidence": "pinned sha256"},
            "raddino": {"weights": "stand-in", "weights_evidence": "32-d"},
        },
    )
    assert status_for("inception", tmp_path, MODEL, ["a", "b"], "privacy", {}, {}).status == REAL
    assert status_for("raddino", tmp_path, MODEL, ["a", "b"], "privacy", {}, {}).status == STAND_IN  # any run's
    status = status_for("raddino", tmp_path, MODEL, ["a"], "privacy", {}, {})
    assert status.status == UNVERIFIED and "no space 'raddino'" in status.evidence
    assert status_for("none", tmp_path, MODEL, ["a"], "privacy", {}, {}).status == NONE


def align_run(results, run_id: str, hidden: int, image_sha: str) -> None:
    text = results / f"text-{hidden}"
    text.mkdir(exist_ok=True)
    (text / "config.json").write_text(json.dumps({"hidden_size": hidden}))
    run = StageRun(results, MODEL, run_id, "align", tool_version="test")
    run.start({}, {"text_model": text}, weights={"image": image_sha, "text": "0" * 64})
    (run.dir / "metrics.parquet").write_text("")
    run.finish({})


def test_biovil_is_a_stand_in_when_its_text_model_is_not_bert_base_wide(tmp_path):
    align_run(tmp_path, "tiny", 32, "1" * 64)
    align_run(tmp_path, "full", 768, "2" * 64)
    status = status_for("biovil", tmp_path, MODEL, ["tiny", "full"], "align", {}, {})
    assert status.status == STAND_IN and "hidden size 32" in status.evidence
    assert status_for("biovil", tmp_path, MODEL, ["full"], "align", {}, {}).status == UNVERIFIED
    assert status_for("biovil", tmp_path, MODEL, ["full"], "align", {"biovil": "real"}, {}).status == REAL
    pins = {"2" * 64: "biovil-t of the registry"}
    assert status_for("biovil", tmp_path, MODEL, ["full"], "align", {}, pins).status == REAL
