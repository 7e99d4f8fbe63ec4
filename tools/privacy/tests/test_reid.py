"""The re-implemented Siamese re-ID network: the published key layout round-trips strictly, the maths of its two
halves, preprocessing modes, refused checkpoints, and equality with torchvision's ResNet-50 where it is installed."""

import numpy as np
import pytest
import torch
from chexbench_common.errors import BadInputError
from chexbench_privacy.reid import IMAGENET_MEAN, IMAGENET_STD, SiameseReID, build_tiny_reid, load_reid, preprocess

# the published checkpoint's key names (ResNet-50_epoch11_data_handling_RPN.pth): a sample and the count
PUBLISHED_KEYS = {
    "model.conv1.weight",
    "model.bn1.running_var",
    "model.layer1.0.downsample.0.weight",
    "model.layer3.5.bn3.num_batches_tracked",
    "model.layer4.2.conv3.weight",
    "model.fc.weight",
    "model.fc.bias",
    "fc_end.weight",
    "fc_end.bias",
}
PUBLISHED_KEY_COUNT = 318 + 2 + 2  # torchvision resnet50 state_dict (320) minus its fc, plus fc 2048->128, plus fc_end


def test_tiny_checkpoint_has_the_published_layout_and_round_trips_strictly(tmp_path):
    path = build_tiny_reid(tmp_path / "r.pth", seed=3)
    state = torch.load(path, weights_only=True)
    assert set(state) >= PUBLISHED_KEYS and len(state) == PUBLISHED_KEY_COUNT
    assert tuple(state["model.fc.weight"].shape) == (128, 8 * 32) and tuple(state["fc_end.weight"].shape) == (1, 128)
    model, sha = load_reid(path)
    assert len(sha) == 64 and not model.training
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key


def test_full_size_network_has_the_published_shapes():
    state = SiameseReID().state_dict()
    assert len(state) == PUBLISHED_KEY_COUNT
    assert tuple(state["model.fc.weight"].shape) == (128, 2048)
    assert tuple(state["model.layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)


def test_embedding_and_head_follow_the_description(tmp_path):
    model, _ = load_reid(build_tiny_reid(tmp_path / "r.pth", seed=5))
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        e = model.embed(x)
        assert torch.allclose(e, torch.sigmoid(model.model(x)))
        score = model.head(e[:2], e[2:])
        manual = torch.sigmoid(torch.abs(e[:2] - e[2:]) @ model.fc_end.weight.T + model.fc_end.bias).squeeze(-1)
        assert torch.allclose(score, manual) and score.shape == (2,)
        assert torch.allclose(model(x[:2], x[2:]), score)


def test_preprocessing_modes():
    grey = np.linspace(0, 1, 300 * 200, dtype=np.float32).reshape(300, 200)
    plain, norm = preprocess(grey, "chexgenbench"), preprocess(grey, "packhaeuser")
    assert plain.shape == (3, 224, 224) and norm.shape == (3, 256, 256)
    assert float(plain.min()) >= 0 and float(plain.max()) <= 1 and torch.equal(plain[0], plain[2])
    resized = (norm * torch.tensor(IMAGENET_STD)[:, None, None]) + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert torch.allclose(resized[0], resized[1], atol=1e-6)


def test_checkpoints_with_missing_or_extra_keys_are_refused_in_one_line(tmp_path):
    state = torch.load(build_tiny_reid(tmp_path / "r.pth"), weights_only=True)
    missing = dict(state)
    del missing["fc_end.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(BadInputError, match=r"missing 1 keys \['fc_end.bias'\]"):
        load_reid(tmp_path / "missing.pth")
    torch.save({k.replace("model.", "backbone."): v for k, v in state.items()}, tmp_path / "other.pth")
    with pytest.raises(BadInputError, match="not in the published layout"):
        load_reid(tmp_path / "other.pth")
    torch.save({"state": state}, tmp_path / "nested.pth")
    with pytest.raises(BadInputError, match="not in the published layout"):
        load_reid(tmp_path / "nested.pth")


def test_equals_torchvision_resnet50_with_the_same_weights():
    """Runs in .venv-vision (make test-vision); the CPU stack has no torchvision."""
    torchvision = pytest.importorskip("torchvision", reason="torchvision lives in .venv-vision (make test-vision)")
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None, num_classes=128).eval()
    ours = SiameseReID()
    assert list(ours.model.state_dict()) == list(reference.state_dict())
    ours.model.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(ours.model(x), reference(x), atol=1e-5)
