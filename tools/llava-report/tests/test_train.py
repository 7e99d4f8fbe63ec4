"""finetune and generate on the tiny random LLaVA: input ids as LLaVA-Rad builds them, LoRA only on the language
model's linears with the projector trained, the seeded fraction, one instruction for training and generation, an
overfit that greedy generation must reproduce from the image alone, SIGKILL-and-resume of both commands, refusals."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_common.imageio import save_grey_png
from chexbench_common.testing import run_as_srun_tasks
from chexbench_llava_report import pipeline, prompting
from chexbench_llava_report.cli import main
from chexbench_llava_report.data import PairDataset, image_token_count, sample_fraction, training_pairs
from chexbench_llava_report.finetune import Options, Request, trainable_model
from chexbench_llava_report.generate import batch_inputs
from chexbench_llava_report.llava_folder import load
from chexbench_schema import CHEXPERT_LABELS, write_table
from chexbench_schema.tables import prompt_id
from click.testing import CliRunner

BRIGHT = "Moderate cardiomegaly with mild pulmonary edema."
DARK = "No acute cardiopulmonary process."
UNSEEN = "Small right apical pneumothorax."  # a TRAIN prompt the generator made no image for


def _png(path: Path, bright: bool, rng) -> None:
    base = 0.8 if bright else 0.2
    save_grey_png((np.clip(base + 0.05 * rng.standard_normal((40, 32)), 0, 1) * 255).astype(np.uint8), path)


def _prompts(split: str, texts, brights, root: Path, rng) -> list[dict]:
    rows = []
    for k, (text, bright) in enumerate(zip(texts, brights, strict=True)):
        _png(root / f"{split}_{k}.png", bright, rng)
        rows.append(
            {
                "split": split,
                "prompt_id": prompt_id(text),
                "prompt": text,
                "patient_id": f"{split}{k}",
                "study_id": None,
                "id": None,
                "image_path": f"{split}_{k}.png",
                "view": "PA",
                **dict.fromkeys(CHEXPERT_LABELS),
            }
        )
    return rows


def make_world(tmp: Path, samples: int = 2) -> dict:
    """TRAIN: a bright-image and a dark-image prompt with `samples` synthetic images each, and one prompt without
    any; TEST: new bright and dark real images with those two findings as references."""
    rng = np.random.default_rng(0)
    real, gen = tmp / "real", tmp / "gen"
    train = _prompts("train", [BRIGHT, DARK, UNSEEN], [True, False, True], real, rng)
    test = _prompts("test", [BRIGHT, DARK], [True, False], real, rng)
    images = []
    for row, bright in zip(train[:2], [True, False], strict=True):
        for s in range(samples):
            name = f"{row['prompt_id']}-{s}.png"
            _png(gen / name, bright, rng)
            images.append(
                {
                    "image_id": f"{row['prompt_id']}-{s}",
                    "prompt_id": row["prompt_id"],
                    "model": "m",
                    "path": name,
                    "seed": s,
                    "sample_index": s,
                    "width": 32,
                    "height": 40,
                    "steps": 2,
                    "guidance": 4.5,
                    "dtype": "float32",
                    "sha256": hashlib.sha256((gen / name).read_bytes()).hexdigest(),
                }
            )
    return {
        "root": tmp,
        "train": write_table(pd.DataFrame(train), tmp / "train.parquet", "prompts", producer="test"),
        "test": write_table(pd.DataFrame(test), tmp / "test.parquet", "prompts", producer="test"),
        "images": write_table(
            pd.DataFrame(images), tmp / "images.parquet", "images", producer="test", extra={"images_root": "gen"}
        ),
        "real": real,
        "results": tmp / "Results",
    }


def finetune_args(world, model_dir, *extra):
    return [
        "finetune",
        *("--results", str(world["results"]), "--model", "m", "--run-id", "r", "--model-dir", str(model_dir)),
        *("--train-prompts", str(world["train"]), "--images", str(world["images"])),
        *("--batch-size", "4", "--workers", "0", "--logging-steps", "5", "--device", "cpu", "--progress", "none"),
        *extra,
    ]


def generate_args(world, model_dir, *extra):
    return [
        "generate",
        *("--results", str(world["results"]), "--model", "m", "--run-id", "r", "--model-dir", str(model_dir)),
        *("--test-prompts", str(world["test"]), "--real-root", str(world["real"])),
        *("--max-new-tokens", "16", "--device", "cpu", "--progress", "none"),
        *extra,
    ]


def invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def stage_dir(world, name):
    return world["results"] / "m" / "r" / "llava-report" / name


def llava_rad_tokenizer_image_token(tokenizer, prompt: str, image_index: int) -> list[int]:
    """LLaVA-Rad's `tokenizer_image_token` re-implemented from its description: each `<image>`-separated chunk is
    tokenized with the tokenizer's own special tokens; the separator is the image index; when the first chunk starts
    with BOS, that BOS is kept once and every chunk loses its first token."""
    chunks = [tokenizer(chunk)["input_ids"] for chunk in prompt.split("<image>")]
    offset = 1 if chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0
    ids = chunks[0][:offset]
    for index, chunk in enumerate(chunks):
        if index:
            ids.append(image_index)
        ids.extend(chunk[offset:])
    return ids


def test_input_ids_are_llava_rads_then_expanded_to_the_image_features(tiny_llava):
    model, processor = load(tiny_llava)
    tokenizer, image_id = processor.tokenizer, model.config.image_token_id
    pixels = processor.image_processor(grey_rgb(), return_tensors="pt")["pixel_values"]
    count = image_token_count(processor, *pixels.shape[-2:])
    assert count == processor.replace_image_token({"pixel_values": pixels}, 0).count(prompting.IMAGE_TOKEN)
    with torch.no_grad():  # the model inserts one feature per placeholder: as many as the tower yields
        features = model.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
    assert sum(f.shape[0] for f in features) == count == 4
    reference = []
    for token in llava_rad_tokenizer_image_token(tokenizer, prompting.prompt_text(), -200):
        reference += [image_id] * count if token == -200 else [token]
    ours = prompting.prompt_ids(tokenizer, prompting.prompt_text(), image_id, count)
    assert ours == reference and ours.count(tokenizer.bos_token_id) == 1 and ours[0] == tokenizer.bos_token_id
    # chunk-wise tokenization differs from tokenizing the whole text (the Llama '▁' before the chunk after <image>)
    whole = processor(images=grey_rgb(), text=prompting.prompt_text(), return_tensors="pt")["input_ids"][0].tolist()
    assert whole != ours and tokenizer.decode(ours, skip_special_tokens=True) != ""


def grey_rgb():
    from PIL import Image

    return Image.fromarray(np.full((40, 32), 200, np.uint8)).convert("RGB")


def test_training_and_generation_share_the_instruction_and_the_prompt_ids(tiny_llava, tmp_path):
    world = make_world(tmp_path)
    model, processor = load(tiny_llava)
    pairs, without = training_pairs(world["train"], world["images"], None)
    assert without == 1 and len(pairs) == 4
    item = PairDataset(pairs, processor, model.config.image_token_id, 2048, prompting.INSTRUCTION)[0]
    prompt_part = [i for i, label in zip(item["input_ids"], item["labels"], strict=True) if label == prompting.IGNORE]
    answer = [label for label in item["labels"] if label != prompting.IGNORE]
    assert processor.tokenizer.decode(answer, skip_special_tokens=True) == pairs["findings"].iloc[0]
    assert answer[-1] == processor.tokenizer.eos_token_id
    generation = batch_inputs(processor, model.config.image_token_id, [pairs["file"].iloc[0]])
    assert generation["input_ids"][0].tolist() == prompt_part
    assert prompting.INSTRUCTION in processor.tokenizer.decode(prompt_part)


def test_lora_sits_on_the_language_model_linears_only_and_the_projector_trains(tiny_llava, tmp_path):
    request = Request(tmp_path, "m", "r", tiny_llava, tmp_path / "unused.parquet", options=Options(lora_r=4))
    model, _ = trainable_model(request)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    lora = {name for name in trainable if ".lora_" in name}
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    layers = model.config.text_config.num_hidden_layers
    assert len(lora) == 2 * len(targets) * layers  # A and B of every target linear of every layer
    for name in lora:
        assert ".language_model.layers." in name and name.split(".lora_")[0].split(".")[-1] in targets, name
    projector = trainable - lora
    assert projector and all(".multi_modal_projector.modules_to_save." in n for n in projector), projector
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert any(".vision_tower." in n for n in frozen) and not any(".vision_tower." in n for n in trainable)
    assert not any("lm_head" in n or "embed_tokens" in n for n in trainable)


def test_an_adapter_in_the_model_folder_is_continued_only_when_asked(tiny_llava, tmp_path):
    """A converted folder with LLaVA-Rad's LoRA in adapter/: by default a new LoRA (the original protocol); with
    continue_adapter, fine-tuning starts from those weights."""
    import shutil

    from peft import LoraConfig, get_peft_model

    folder = tmp_path / "with-adapter"
    shutil.copytree(tiny_llava, folder)
    model, _ = load(folder)
    peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    peft.save_pretrained(folder / "adapter")
    saved = {n: p.detach().clone() for n, p in peft.named_parameters() if "lora_B" in n}
    fresh, _ = trainable_model(Request(tmp_path, "m", "r", folder, tmp_path / "x", options=Options()))
    fresh_b = [p for n, p in fresh.named_parameters() if "lora_B" in n]
    assert fresh_b and all(not p.any() for p in fresh_b)  # a new LoRA: B starts at zero, nothing of adapter/ loaded
    asked = Options(continue_adapter=True)
    continued, _ = trainable_model(Request(tmp_path, "m", "r", folder, tmp_path / "x", options=asked))
    loaded = {n: p for n, p in continued.named_parameters() if "lora_B" in n}
    assert set(loaded) == set(saved) and all(p.requires_grad for p in loaded.values())
    assert all(torch.equal(loaded[n], saved[n]) for n in saved)
    assert any(p.requires_grad for n, p in continued.named_parameters() if "multi_modal_projector" in n)


def test_the_converted_llava_rad_folder_can_be_fine_tuned_from_its_own_lora(converted_tiny_llava_rad, tmp_path):
    """convert's output (LLaVA-Rad's LoRA in adapter/): with --continue-adapter finetune continues that LoRA and adds
    the projector; the fine-tuned adapter then drives generation."""
    from safetensors import safe_open

    world = make_world(tmp_path)
    args = finetune_args(world, converted_tiny_llava_rad, "--epochs", "1", "--batch-size", "2", "--continue-adapter")
    result = invoke(args)
    assert result.exit_code == 0, result.output
    tuned = stage_dir(world, "finetune-p100")
    assert json.loads((tuned / "manifest.json").read_text())["params"]["adapter_start"] == "model-dir adapter"

    def shapes(path):
        with safe_open(str(path), "pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)

    before = shapes(converted_tiny_llava_rad / "adapter" / "adapter_model.safetensors")
    after = shapes(tuned / "adapter" / "adapter_model.safetensors")
    assert {k: v for k, v in after.items() if "lora_" in k} == before  # the same LoRA, continued
    assert {k for k in after if "lora_" not in k} == {
        f"base_model.model.model.multi_modal_projector.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")
    }
    result = invoke(generate_args(world, converted_tiny_llava_rad, "--finetuned", str(tuned)))
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(stage_dir(world, "generate-p100") / "predictions.parquet")) == 2


def test_the_fraction_is_seeded_and_drawn_over_unique_prompts():
    pairs = pd.DataFrame(
        {"prompt_id": [f"p{i // 3:02d}" for i in range(60)], "image_id": [f"i{i}" for i in range(60)]}
    )  # 20 prompts with 3 images each
    ten = sample_fraction(pairs, 10, seed=0)
    assert ten["prompt_id"].nunique() == 2 and len(ten) == 6  # every image of a drawn prompt
    assert ten.equals(sample_fraction(pairs, 10, seed=0))
    draws = {tuple(sorted(sample_fraction(pairs, 50, seed=s)["prompt_id"].unique())) for s in range(5)}
    assert len(draws) > 1 and all(len(d) == 10 for d in draws)
    assert sample_fraction(pairs, 100, seed=3)["image_id"].tolist() == pairs["image_id"].tolist()
    assert sample_fraction(pairs.head(3), 10, seed=0)["prompt_id"].nunique() == 1  # at least one prompt


def test_finetune_overfits_and_greedy_generation_reproduces_the_findings(tiny_llava, tmp_path):
    world = make_world(tmp_path)
    result = invoke(
        finetune_args(
            world, tiny_llava, "--epochs", "20", "--lr", "5e-3", "--save-steps", "100", "--no-gradient-checkpointing"
        )
    )
    assert result.exit_code == 0, result.output
    tuned = stage_dir(world, "finetune-p100")
    assert sorted(p.name for p in tuned.iterdir()) == [
        "_SUCCESS",
        "adapter",
        "manifest.json",
        "pairs.csv",
        "train_log.csv",
    ]
    assert (tuned / "adapter" / "adapter_model.safetensors").is_file()
    manifest = json.loads((tuned / "manifest.json").read_text())
    assert manifest["counts"] == {"pairs": 4, "prompts": 2, "prompts_without_images": 1}
    assert manifest["params"]["prompting"]["instruction"] == prompting.INSTRUCTION
    losses = pd.read_csv(tuned / "train_log.csv")["loss"]
    assert losses.iloc[-1] < losses.iloc[0] - 0.5, losses.tolist()
    result = invoke(generate_args(world, tiny_llava, "--finetuned", str(tuned), "--batch-size", "2"))
    assert result.exit_code == 0, result.output
    out = stage_dir(world, "generate-p100")
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert predictions.columns.tolist() == ["prompt_id", "image_path", "reference", "generated", "n_tokens"]
    assert predictions["generated"].tolist() == [BRIGHT, DARK]  # new real images: told apart by the image alone
    assert (predictions["n_tokens"] > 0).all()
    assert pd.read_csv(out / "predictions.csv")["generated"].tolist() == [BRIGHT, DARK]
    record = json.loads((out / "manifest.json").read_text())
    assert record["params"]["prompting"] == manifest["params"]["prompting"]
    import shutil

    from chexbench_llava_report.demo_model import write_tiny_llava

    other = write_tiny_llava(tmp_path / "other-model", seed=1)
    assert_refused(generate_args(world, other, "--finetuned", str(tuned)), 3, "fine-tuned from another model folder")
    mismatched = shutil.copytree(tuned, tmp_path / "other-instruction")
    changed = json.loads((mismatched / "manifest.json").read_text())
    changed["params"]["prompting"]["instruction"] = "Provide a description of the findings in the radiology image."
    (mismatched / "manifest.json").write_text(json.dumps(changed))
    assert_refused(generate_args(world, tiny_llava, "--finetuned", str(mismatched)), 3, "fine-tuned with prompting")
    zero = invoke(generate_args(world, tiny_llava))  # zero-shot: the random model, its own folder
    assert zero.exit_code == 0, zero.output
    assert len(pd.read_parquet(stage_dir(world, "generate-zeroshot") / "predictions.parquet")) == 2


def _cli(args, fault=None):
    cli = Path(sys.executable).parent / "chexbench-llava-report"
    env = {**os.environ, "CHEXBENCH_FAULT": fault} if fault else dict(os.environ)
    return subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.system
def test_a_killed_finetune_resumes_from_its_last_checkpoint(tiny_llava, tmp_path):
    world = make_world(tmp_path)
    args = finetune_args(world, tiny_llava, "--epochs", "3", "--batch-size", "2", "--save-steps", "2")  # 6 steps
    killed = _cli(args, fault="llava-report:checkpoint@1")
    assert killed.returncode == -9, killed.stderr[-2000:]
    tuned = stage_dir(world, "finetune-p100")
    assert (tuned / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file() and not (
        tuned / "_SUCCESS"
    ).exists()
    again = _cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((tuned / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["resumed_from"] == "checkpoints/checkpoint-2"
    assert "resuming from" in again.stderr and not (tuned / "checkpoints").exists()
    assert manifest["optimiser_steps"] == 6 and pd.read_csv(tuned / "train_log.csv")["step"].tolist() == [5]
    # the resumed training is the uninterrupted one, bit for bit (optimizer, schedule, RNG and batch order restored);
    # only the first loss logged after the resume averages the steps since the resume (the Trainer's rule)
    from safetensors.torch import load_file

    straight = {**world, "results": tmp_path / "straight"}
    assert _cli(finetune_args(straight, tiny_llava, *args[len(finetune_args(world, tiny_llava)) :])).returncode == 0
    uninterrupted = stage_dir(straight, "finetune-p100")
    resumed, whole = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (tuned, uninterrupted))
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)


@pytest.mark.slow
@pytest.mark.system
def test_torchrun_on_two_cpu_processes_trains_once_and_rank_0_alone_writes(tiny_llava, tmp_path):
    world = make_world(tmp_path)
    torchrun = Path(sys.executable).parent / "torchrun"
    args = finetune_args(world, tiny_llava, "--epochs", "2", "--batch-size", "1", "--logging-steps", "1")[1:]
    command = [str(torchrun), "--nproc-per-node", "2", "-m", "chexbench_llava_report", "finetune", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((stage_dir(world, "finetune-p100") / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["counts"]["pairs"] == 4
    assert manifest["optimiser_steps"] == 4  # 4 pairs, 2 ranks of batch 1: 2 steps per epoch, 2 epochs
    assert result.stderr.count("step 4/4, epoch 2.00, loss") == 1  # rank 0 logs, rank 1 does not
    assert result.stdout.count("adapter") == 1


def test_run_calls_the_steps_library_functions_with_the_commands_defaults(tiny_llava, tmp_path):
    """The stage in one call without Click: a fine-tuning made before by the `finetune` command with the same options
    is up to date for `run` (its defaults are the command's), then generate and score run, each reported once."""
    world = make_world(tmp_path)
    assert invoke(finetune_args(world, tiny_llava, "--epochs", "1")).exit_code == 0
    request = pipeline.Request(
        results=world["results"],
        model="m",
        run_id="r",
        model_dir=tiny_llava,
        train_prompts=world["train"],
        images=world["images"],
        test_prompts=world["test"],
        real_root=world["real"],
        fractions=(100,),
        zero_shot=False,
        epochs=1.0,
        batch_size=4,
        workers=0,
        logging_steps=5,
        max_new_tokens=4,
        bootstrap=0,
        device="cpu",
    )
    steps = []
    pipeline.run(request, done=lambda stage, did_work: steps.append((stage.dir.name, did_work)))
    assert steps == [("finetune-p100", False), ("generate-p100", True), ("llava-report", True)]
    assert (world["results"] / "m" / "r" / "llava-report" / "metrics.parquet").is_file()


@pytest.mark.slow
@pytest.mark.system
def test_run_under_two_srun_tasks_trains_on_both_and_rank_0_alone_generates_and_scores(tiny_llava, tmp_path):
    """What a Slurm job with --ntasks-per-node=2 starts (compose/hpc/common.sh): the same `run` twice with only
    Slurm's variables; they form one torch world, train once, and rank 0 alone writes, generates and scores."""
    world = make_world(tmp_path)
    args = [
        "run",
        *("--results", str(world["results"]), "--model", "m", "--run-id", "r", "--model-dir", str(tiny_llava)),
        *("--train-prompts", str(world["train"]), "--images", str(world["images"])),
        *("--test-prompts", str(world["test"]), "--real-root", str(world["real"]), "--fraction", "100"),
        *("--no-zero-shot", "--epochs", "2", "--batch-size", "1", "--workers", "0", "--max-new-tokens", "4"),
        *("--bootstrap", "0", "--device", "cpu", "--progress", "none"),
    ]
    cli = Path(sys.executable).parent / "chexbench-llava-report"
    rank0, rank1 = run_as_srun_tasks([str(cli), *args])
    assert [rank0.returncode, rank1.returncode] == [0, 0], rank0.stderr[-2000:] + rank1.stderr[-2000:]
    manifest = json.loads((stage_dir(world, "finetune-p100") / "manifest.json").read_text())
    assert manifest["optimiser_steps"] == 4  # 4 pairs, 2 ranks of batch 1: 2 steps per epoch, 2 epochs
    assert len(pd.read_parquet(stage_dir(world, "generate-p100") / "predictions.parquet")) == 2
    assert (world["results"] / "m" / "r" / "llava-report" / "metrics.parquet").is_file()
    assert "metrics.parquet" in rank0.stdout and rank1.stdout == ""  # rank 1 trained and wrote nothing


@pytest.mark.system
def test_a_killed_generate_resumes_from_its_finished_batches(tiny_llava, tmp_path):
    """SIGKILL after the first finished batch: it stays in parts/, and the next run generates only the rest."""
    world = make_world(tmp_path)
    args = generate_args(world, tiny_llava, "--batch-size", "1", "--max-new-tokens", "4")
    killed = _cli(args, fault="llava-report:batch@1")
    assert killed.returncode == -9, killed.stderr[-2000:]
    out = stage_dir(world, "generate-zeroshot")
    assert [p.name for p in (out / "parts").glob("batch-*")] == ["batch-00000000.parquet"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "running" and not (out / "_SUCCESS").exists()
    again = _cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["resumed_batches"] == 1
    assert manifest["counts"]["test_images"] == 2
    assert pd.read_parquet(out / "predictions.parquet")["image_path"].tolist() == ["test_0.png", "test_1.png"]
    assert not (out / "parts").exists()


def assert_refused(args, code, expect):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and "Warning" not in line]
    assert len(lines) == 1 and expect in lines[0], result.output


def test_bad_inputs_are_refused_in_one_line(tiny_llava, tmp_path, monkeypatch):
    world = make_world(tmp_path)
    not_llava = tmp_path / "not-llava"
    not_llava.mkdir()
    (not_llava / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert_refused(finetune_args(world, not_llava), 3, "not a transformers LLaVA folder")
    assert_refused(generate_args(world, not_llava), 3, "not a transformers LLaVA folder")
    assert_refused(generate_args(world, tmp_path / "nowhere"), 5, "model folder not found")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_refused(finetune_args(world, tiny_llava, "--device", "cuda"), 5, "no CUDA GPU is visible")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with two GPUs: the index is refused
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert_refused(finetune_args(world, tiny_llava, "--device", "cuda:1"), 3, "use CUDA_VISIBLE_DEVICES=1")
    monkeypatch.undo()
    assert_refused(generate_args(world, tiny_llava, "--finetuned", str(tmp_path)), 5, "not a finished finetune folder")
    (tmp_path / "gen" / f"{prompt_id(DARK)}-1.png").unlink()
    assert_refused(finetune_args(world, tiny_llava), 3, f"row 4: synthetic image {tmp_path / 'gen'}")
    assert not stage_dir(world, "finetune-p100").joinpath("adapter").exists()


def run_args(world, results: Path, model_dir, chexbert, *extra):
    checkpoint, tokenizer = chexbert
    return [
        "run",
        *("--results", str(results), "--model", "m", "--run-id", "r", "--model-dir", str(model_dir)),
        *("--train-prompts", str(world["train"]), "--images", str(world["images"])),
        *("--test-prompts", str(world["test"]), "--real-root", str(world["real"])),
        *("--epochs", "4", "--lr", "5e-3", "--batch-size", "3", "--workers", "0", "--logging-steps", "1"),
        *("--max-new-tokens", "8"),
        *("--bootstrap", "50", "--chexbert", str(checkpoint), "--chexbert-tokenizer", str(tokenizer)),
        *("--device", "cpu", "--progress", "none"),
        *extra,
    ]


@pytest.mark.system
def test_the_same_run_twice_gives_equal_losses_predictions_and_metrics(tiny_llava, tiny_chexbert, tmp_path):
    """`run` (fine-tune on 50 and 100 %, generate, score) twice in fresh processes with the same seed: equal losses,
    predictions and metrics tables, exactly. The second process has another hash seed (set and dict orders differ)
    and fine-tunes the fractions in the other order, so each LoRA starts from its seeded draw whatever ran before."""
    world = make_world(tmp_path, samples=3)
    runs = {}
    for name, hash_seed, fractions in (("a", "1", ("50", "100")), ("b", "2", ("100", "50"))):
        results = tmp_path / name
        extra = [a for f in fractions for a in ("--fraction", f)]
        cli = Path(sys.executable).parent / "chexbench-llava-report"
        done = subprocess.run(
            [str(cli), *run_args(world, results, tiny_llava, tiny_chexbert, *extra)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = results / "m" / "r" / "llava-report"
    a, b = runs["a"], runs["b"]
    for setting in ("p50", "p100"):
        losses = pd.read_csv(a / f"finetune-{setting}" / "train_log.csv")
        assert len(losses) >= 4 and losses["loss"].iloc[-1] < losses["loss"].iloc[0], losses
        again = pd.read_csv(b / f"finetune-{setting}" / "train_log.csv")
        pd.testing.assert_frame_equal(losses, again, check_exact=True)
    for setting in ("p50", "p100", "zeroshot"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / f"generate-{setting}" / "predictions.parquet"),
            pd.read_parquet(b / f"generate-{setting}" / "predictions.parquet"),
            check_exact=True,
        )
    metrics = pd.read_parquet(a / "metrics.parquet")
    assert metrics["value"].notna().sum() > 20
    pd.testing.assert_frame_equal(metrics, pd.read_parquet(b / "metrics.parquet"), check_exact=True)
    for table in sorted(p.name for p in (a / "original").iterdir()):
        assert (a / "original" / table).read_text() == (b / "original" / table).read_text(), table
    facts = json.loads((a / "finetune-p50" / "manifest.json").read_text())["repeatability"]
    assert facts["device"] == "cpu" and facts["torch_threads"] >= 1 and facts["bitwise_repeatable"] is True


def test_run_with_two_training_seeds_fine_tunes_each_and_scores_their_mean(tiny_llava, tiny_chexbert, tmp_path):
    """--seeds 2: seed 0 keeps the single-seed folders, seed 1 gets its own; the losses differ (the variation a
    single seed hides); the metrics hold each seed and their mean."""
    world = make_world(tmp_path)
    extra = ("--fraction", "100", "--seeds", "2", "--no-zero-shot", "--epochs", "2", "--bootstrap", "20")
    result = invoke(run_args(world, world["results"], tiny_llava, tiny_chexbert, *extra))
    assert result.exit_code == 0, result.output
    losses = {}
    for seed, name in ((0, "p100"), (1, "p100-seed1")):
        manifest = json.loads((stage_dir(world, f"finetune-{name}") / "manifest.json").read_text())
        assert manifest["params"]["seed"] == seed and manifest["status"] == "success"
        losses[seed] = pd.read_csv(stage_dir(world, f"finetune-{name}") / "train_log.csv")["loss"].tolist()
        assert len(pd.read_parquet(stage_dir(world, f"generate-{name}") / "predictions.parquet")) == 2
    assert len(losses[0]) == 4 and losses[0] != losses[1]
    metrics = pd.read_parquet(stage_dir(world, "metrics.parquet"))
    assert set(metrics["subset"]) == {"p100/seed0", "p100/seed1", "p100"}
    by = metrics.set_index(["subset", "metric"])["value"]
    assert by["p100", "ROUGE-L"] == pytest.approx((by["p100/seed0", "ROUGE-L"] + by["p100/seed1", "ROUGE-L"]) / 2)
    assert json.loads((stage_dir(world, "manifest.json")).read_text())["training_seeds"] == {"p100": [0, 1]}
