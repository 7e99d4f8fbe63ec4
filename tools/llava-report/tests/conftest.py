"""Fixtures shared by the llava-report tests (each area adds its own; none downloads anything)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    """A converted-layout LLaVA folder with random weights (demo_model.write_tiny_llava): Dinov2 tower at 28 px,
    two-layer Llama, a locally trained tokenizer with `<image>`; no adapter/."""
    from chexbench_llava_report.demo_model import write_tiny_llava

    return write_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model", seed=0)


@pytest.fixture(scope="session")
def converted_tiny_llava_rad(tmp_path_factory) -> Path:
    """A tiny random LLaVA-Rad in LLaVA-Rad's own layout converted by chexbench-llava-convert (fp32, LoRA kept as
    `adapter/`): the folder the stage reads, made by the tool that makes it for users. Read-only."""
    from chexbench_llava_convert.convert import convert
    from chexbench_llava_convert.tiny import write_tiny_llava_rad

    tiny = write_tiny_llava_rad(tmp_path_factory.mktemp("tiny-llava-rad"), seed=0)
    out = tmp_path_factory.mktemp("converted") / "llava-rad-hf"
    return convert(tiny.llava_rad, tiny.vicuna, out, dtype="float32").out


SCORE_PHRASES = (
    "no acute cardiopulmonary process.",
    "the heart is normal size.",
    "mild cardiomegaly.",
    "moderate cardiomegaly is stable.",
    "small left pleural effusion.",
    "bilateral pleural effusions.",
    "no pleural effusion or pneumothorax.",
    "mild pulmonary edema.",
    "focal consolidation in the right lung may be pneumonia.",
    "bibasilar atelectasis.",
    "lungs are clear.",
    "rib fracture is seen.",
    "tube in place.",
    "possible nodule.",
    "enlarged cardiomediastinum.",
    "there is no focal consolidation.",
)


@pytest.fixture(scope="session")
def report_pairs() -> tuple[list[str], list[str]]:
    """(references, generated): 40 findings made of radiology phrases (seeded), with an empty generation, a
    reference with newlines and runs of blanks, and a generation longer than CheXbert's 512 tokens."""
    import random

    rng = random.Random(1)

    def report() -> str:
        return " ".join(rng.sample(SCORE_PHRASES, rng.randint(1, 5)))

    references = [report() for _ in range(40)]
    generated = [report() for _ in range(40)]
    generated[3] = ""
    references[5] = "  lungs are\n\n clear.   mild   cardiomegaly. "
    generated[7] = " ".join(["mild cardiomegaly."] * 200)
    generated[9] = references[9]
    return references, generated


@pytest.fixture(scope="session")
def tiny_chexbert(tmp_path_factory) -> tuple[Path, Path]:
    """(chexbert.pth, tokenizer folder): a random CheXbert in the published layout (chexbert.write_tiny_chexbert)."""
    from chexbench_llava_report.chexbert import write_tiny_chexbert

    return write_tiny_chexbert(tmp_path_factory.mktemp("tiny-chexbert"), seed=0)
