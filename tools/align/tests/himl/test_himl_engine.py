"""The himl engine loads what hi-ml loads and refuses, in one line, what hi-ml would load wrongly or fail on (run in
.venv-himl by `make test-align-himl`; skipped elsewhere)."""

import pytest
import torch

pytest.importorskip("health_multimodal", reason="hi-ml-multimodal lives in .venv-himl (make test-align-himl)")

from chexbench_align.scorers import BioViLTHiml  # noqa: E402
from chexbench_align.tiny import IMAGE_FILE, TEXT_DIR, build_tiny_biovil, build_tiny_text  # noqa: E402
from chexbench_common.errors import BadInputError  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The demo's tiny BioViL-T: full ResNet-50, small text model."""
    return build_tiny_biovil(tmp_path_factory.mktemp("full"))


def test_the_demo_model_loads_in_hi_ml(full):
    scorer = BioViLTHiml(full / IMAGE_FILE, full / TEXT_DIR, CPU)
    vectors, cut = scorer.encode_texts(["Small left pleural effusion."])
    assert vectors.shape == (1, 128) and not cut.any()


def test_a_narrowed_resnet_is_refused_with_the_reason(tmp_path, full):
    narrow = build_tiny_biovil(tmp_path / "narrow", width=8)
    with pytest.raises(BadInputError, match=r"ResNet-50\) cannot load it: size mismatch for encoder.encoder.conv1"):
        BioViLTHiml(narrow / IMAGE_FILE, full / TEXT_DIR, CPU)


def test_a_text_model_missing_its_head_is_refused_not_filled_at_random(tmp_path, full):
    text = build_tiny_text(tmp_path / "text")
    state = torch.load(text / "pytorch_model.bin", weights_only=True)
    del state["cls_projection_head.dense_to_output.weight"]
    torch.save(state, text / "pytorch_model.bin")
    with pytest.raises(BadInputError, match="missing .'cls_projection_head.dense_to_output.weight'"):
        BioViLTHiml(full / IMAGE_FILE, text, CPU)
