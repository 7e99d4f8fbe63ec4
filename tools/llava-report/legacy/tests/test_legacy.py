"""The legacy LLaVA-Rad environment's translation layer: our pairs in its loaders' format, the commands of its entry
points, and its prediction lines back as our table. LLaVA-Rad itself never ran here (research licence, no weights)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from chexbench_common.errors import BadInputError
from chexbench_llava_legacy import translation as legacy

sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))  # the stage tests' world builders

INSTRUCTION = "Describe the findings of the chest x-ray."


def pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["p1", "p2"],
            "image": ["files/p10/a.png", "files/p11/b.png"],
            "findings": ["No acute process. ", "Small left effusion."],
            "view": ["PA", "AP"],
        }
    )


def test_records_are_llava_conversations_the_mimic_loaders_keep():
    items = legacy.records(pairs(), INSTRUCTION, source="pairs")
    first = items[0]
    assert first["image"] == "files/p10/a.png" and first["id"] == "p1"
    # what mimic_test_findings filters on: rule-based extraction, a frontal view, non-empty findings
    assert first["generate_method"] == "rule-based" and first["view"] == "PA"
    human, answer = first["conversations"]
    assert human == {"from": "human", "value": "<image>\n" + INSTRUCTION}
    assert answer == {"from": "gpt", "value": "No acute process."}
    legacy.check_frontal(items, "pairs")  # both frontal: accepted


def test_records_refuse_empty_findings_and_non_frontal_test_rows(tmp_path):
    bad = pairs()
    bad.loc[1, "findings"] = "  "
    with pytest.raises(BadInputError, match="pairs row 2: empty findings"):
        legacy.records(bad, INSTRUCTION, source="pairs")
    lateral = pairs()
    lateral.loc[0, "view"] = "LATERAL"
    with pytest.raises(BadInputError, match="1 rows are not AP/PA .first: row 1."):
        legacy.check_frontal(legacy.records(lateral, INSTRUCTION, source="test"), "test")
    with pytest.raises(BadInputError, match="missing columns"):
        legacy.records(pairs().drop(columns="findings"), INSTRUCTION, source="pairs")


def test_written_records_round_trip_as_one_json_list(tmp_path):
    items = legacy.records(pairs(), INSTRUCTION, source="pairs")
    path = legacy.write_records(items, tmp_path / "train.json")
    assert json.loads(path.read_text()) == items
    assert not list(tmp_path.glob(".*tmp"))


def test_finetune_command_carries_the_recipe(tmp_path):
    argv = legacy.finetune_command(
        python="/venv/bin/python",
        gpus=4,
        data_json=tmp_path / "train.json",
        image_folder=tmp_path / "images",
        vicuna=tmp_path / "vicuna",
        tower_config=tmp_path / "biomedclipcxr_518.json",
        tower_checkpoint=tmp_path / "biomedclipcxr_518_checkpoint.pt",
        projector=None,
        output_dir=tmp_path / "llava-rad-p10",
        recipe=legacy.Recipe(),
    )
    assert argv[:5] == ["/venv/bin/python", "-m", "deepspeed.launcher.runner", "--num_gpus", "4"]
    assert "llava/train/train_mem.py" in argv
    flags = dict(zip(argv[6::2], argv[7::2], strict=True))
    assert flags["--lora_r"] == "64" and flags["--lora_alpha"] == "128" and flags["--lora_dropout"] == "0.05"
    assert flags["--learning_rate"] == "0.0001" and flags["--lr_scheduler_type"] == "cosine"
    assert flags["--warmup_ratio"] == "0.03" and flags["--num_train_epochs"] == "5"
    assert flags["--loader"] == "mimic_train_findings" and flags["--version"] == "v1"
    assert flags["--mm_vision_select_layer"] == "-2" and flags["--gradient_checkpointing"] == "True"
    assert "--pretrain_mm_mlp_adapter" not in flags


def test_generate_command_is_greedy_v1_and_needs_a_llava_rad_folder_name(tmp_path):
    argv = legacy.generate_command(
        python="python",
        query_file=tmp_path / "test.json",
        image_folder=tmp_path / "real",
        prediction_file=tmp_path / "pred.jsonl",
        model_path=tmp_path / "llava-rad-p10",
        vicuna=tmp_path / "vicuna",
        batch_size=8,
    )
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert argv[:3] == ["python", "-m", "llava.eval.model_mimic_cxr"]
    assert flags["--temperature"] == "0" and flags["--conv_mode"] == "v1" and flags["--loader"] == "mimic_test_findings"
    with pytest.raises(BadInputError, match="starts with 'llava-rad'"):
        legacy.generate_command(
            python="python",
            query_file=tmp_path / "q",
            image_folder=tmp_path,
            prediction_file=tmp_path / "p",
            model_path=tmp_path / "finetune-p10",
            vicuna=tmp_path,
            batch_size=1,
        )


def _lines(*answers: dict) -> str:
    return "\n".join(json.dumps(a) for a in answers) + "\n"


def test_predictions_come_back_in_record_order_as_our_table(tmp_path):
    items = legacy.records(pairs(), INSTRUCTION, source="pairs")
    path = tmp_path / "pred.jsonl"
    path.write_text(
        _lines(
            {
                "image": "files/p11/b.png",
                "query": "q",
                "reference": "r",
                "prediction": "Effusion.",
                "generation loss": 1,
            },
            {"image": "files/p10/a.png", "query": "q", "reference": "r", "prediction": "Normal.", "generation loss": 1},
        )
    )
    table = legacy.read_predictions(path, items)
    assert table["prompt_id"].tolist() == ["p1", "p2"]
    assert table["generated"].tolist() == ["Normal.", "Effusion."]
    assert table["reference"].tolist() == ["No acute process.", "Small left effusion."]


def test_missing_duplicate_or_malformed_predictions_are_refused(tmp_path):
    items = legacy.records(pairs(), INSTRUCTION, source="pairs")
    path = tmp_path / "pred.jsonl"
    path.write_text(_lines({"image": "files/p10/a.png", "prediction": "x"}))
    with pytest.raises(BadInputError, match="no prediction for 1 of 2 images .first: files/p11/b.png."):
        legacy.read_predictions(path, items)
    path.write_text(
        _lines({"image": "files/p10/a.png", "prediction": "x"}, {"image": "files/p10/a.png", "prediction": "y"})
    )
    with pytest.raises(BadInputError, match="line 2: files/p10/a.png answered twice"):
        legacy.read_predictions(path, items)
    path.write_text("{not json\n")
    with pytest.raises(BadInputError, match="line 1: not a LLaVA-Rad prediction"):
        legacy.read_predictions(path, items)


def test_the_legacy_dockerfile_lints_clean_and_builds_from_the_users_clone():
    dockerfile = Path(__file__).parents[1] / "Dockerfile"
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), str(dockerfile)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = dockerfile.read_text()
    assert "COPY --from=llava-rad . /opt/llava-rad" in text  # the user's clone, a named build context
    assert "CHEXBENCH_VARIANT=legacy" in text and "python3.10" in text


# --- the legacy commands end to end against a stand-in clone -----------------------------------------------------
# The stand-in has LLaVA-Rad's entry-point names only: its "training" records the command it got, its "inference"
# answers each query with its reference in upper case. What is tested is ours: the variant switch, the records and
# commands handed over, the stage folders and manifests, and the predictions table read back.
STAND_IN = {
    "llava/__init__.py": "",
    "llava/eval/__init__.py": "",
    "llava/eval/model_mimic_cxr.py": """
import json, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
with open(args["--prediction_file"], "w") as out:
    for record in json.load(open(args["--query_file"])):
        reference = record["conversations"][1]["value"]
        out.write(json.dumps({"image": record["image"], "query": "q", "reference": reference,
                              "prediction": reference.upper()}) + "\\n")
""",
    "deepspeed/__init__.py": "",
    "deepspeed/launcher/__init__.py": "",
    "deepspeed/launcher/runner.py": """
import json, pathlib, sys
args = dict(zip(sys.argv[4::2], sys.argv[5::2]))
out = pathlib.Path(args["--output_dir"])
out.mkdir(parents=True, exist_ok=True)
(out / "argv.json").write_text(json.dumps(sys.argv[1:]))
(out / "records.json").write_text(open(args["--data_path"]).read())
""",
}


def stand_in_clone(root: Path) -> Path:
    for name, text in STAND_IN.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run_legacy(*args: str, clone: Path) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "chexbench-llava-report"
    env = {**os.environ, "CHEXBENCH_VARIANT": "legacy", "LLAVA_RAD_ROOT": str(clone), "CHEXBENCH_PROGRESS": "none"}
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=300)


def test_legacy_finetune_and_generate_hand_our_tables_to_llava_rad_and_read_its_answers(tmp_path):
    from test_train import make_world

    world = make_world(tmp_path / "world")
    clone = stand_in_clone(tmp_path / "LLaVA-Rad")
    for name in ("vicuna", "tower"):
        (tmp_path / name).mkdir()
    (tmp_path / "tower" / "cfg.json").write_text("{}")
    (tmp_path / "tower" / "ckpt.pt").write_bytes(b"weights")
    common = ("--results", str(world["results"]), "--model", "m", "--run-id", "r", "--vicuna", str(tmp_path / "vicuna"))
    tuned = run_legacy(
        "finetune",
        *common,
        *("--train-prompts", str(world["train"]), "--images", str(world["images"]), "--fraction", "50"),
        *(
            "--tower-config",
            str(tmp_path / "tower" / "cfg.json"),
            "--tower-checkpoint",
            str(tmp_path / "tower" / "ckpt.pt"),
        ),
        clone=clone,
    )
    assert tuned.returncode == 0, tuned.stderr
    folder = world["results"] / "m" / "r" / "llava-report" / "finetune-p50"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["params"]["engine"] == "legacy"
    records = json.loads((folder / "llava-rad-p50" / "records.json").read_text())
    assert len(records) == 2  # 50 % of the 2 prompts with images: one prompt, both of its images
    assert {r["conversations"][0]["value"] for r in records} == {"<image>\nDescribe the findings of the chest x-ray."}
    assert all(Path(r["image"]).is_file() for r in records)
    argv = json.loads((folder / "llava-rad-p50" / "argv.json").read_text())
    assert argv[argv.index("--data_path") + 1] == str((folder / "train.json").resolve())

    answered = run_legacy(
        "generate",
        *common,
        *("--test-prompts", str(world["test"]), "--real-root", str(world["real"]), "--finetuned", str(folder)),
        clone=clone,
    )
    assert answered.returncode == 0, answered.stderr
    predictions = pd.read_parquet(
        world["results"] / "m" / "r" / "llava-report" / "generate-p50" / "predictions.parquet"
    )
    assert list(predictions.columns) == ["prompt_id", "image_path", "reference", "generated", "n_tokens"]
    assert (predictions["generated"] == predictions["reference"].str.upper()).all() and len(predictions) == 2


def test_legacy_commands_refuse_a_folder_that_is_not_a_llava_rad_clone(tmp_path):
    from test_train import make_world

    world = make_world(tmp_path / "world")
    (tmp_path / "vicuna").mkdir()
    (tmp_path / "t.json").write_text("{}")
    result = run_legacy(
        "finetune",
        *("--results", str(world["results"]), "--model", "m", "--train-prompts", str(world["train"])),
        *("--images", str(world["images"]), "--vicuna", str(tmp_path / "vicuna")),
        *("--tower-config", str(tmp_path / "t.json"), "--tower-checkpoint", str(tmp_path / "t.json")),
        clone=tmp_path,
    )
    assert result.returncode == 5
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "not a LLaVA-Rad clone" in lines[0], result.stderr


def test_the_legacy_compose_service_is_the_llava_report_service_on_the_users_image():
    import yaml

    import compose

    root = Path(__file__).parents[4]
    binary = Path(compose.__file__).parent / "docker-compose"
    files = ["-f", "compose/compose.yaml", "-f", "compose/compose.legacy.yaml"]
    config = subprocess.run(
        [str(binary), *files, "--profile", "llava-report-legacy", "--profile", "llava-report", "config"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "MIMIC_ROOT": str(root)},
        timeout=60,
    )
    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    legacy, native = services["llava-report-legacy"], services["llava-report"]
    assert legacy["image"].endswith("/llava-report-legacy:0.1.0") and "build" not in legacy
    assert legacy["profiles"] == ["llava-report-legacy"]
    assert legacy["environment"]["CHEXBENCH_VARIANT"] == "legacy"
    assert legacy["volumes"] == native["volumes"] and legacy["user"] == native["user"]
