"""Labels, settings, the validation split and the metrics against independent references."""

import numpy as np
import pandas as pd
import pytest
from chexbench_classify.labels import targets
from chexbench_classify.metrics import auroc, evaluate, tune_thresholds
from chexbench_classify.settings import phases, validation_split
from chexbench_schema import CHEXPERT_LABELS
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score


def frame(values: dict[str, list]) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({label: values.get(label, [None] * n) for label in CHEXPERT_LABELS})


def test_uncertainty_policies():
    f = frame({"Edema": [1.0, 0.0, -1.0, None]})
    c = CHEXPERT_LABELS.index("Edema")
    for policy, expected, kept in (
        ("zeros", [1, 0, 0, 0], [1, 1, 1, 1]),
        ("ones", [1, 0, 1, 0], [1, 1, 1, 1]),
        ("ignore", [1, 0, 0, 0], [1, 1, 0, 1]),
    ):
        y, mask = targets(f, policy)
        assert y[:, c].tolist() == expected and mask[:, c].tolist() == [bool(k) for k in kept]


def _pool(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    real = pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(n)],
            "patient_id": [f"pat{i // 3}" for i in range(n)],
            "file": [f"r{i}" for i in range(n)],
        }
    )
    synth = pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(0, n, 1) if i % 10 != 0],  # every 10th has no twin
            "file": [f"s{i}" for i in range(n) if i % 10 != 0],
        }
    )
    return real, synth


def test_validation_split_is_patient_disjoint_and_seeded():
    real, _ = _pool(300)
    train, val = validation_split(real, 0.1, seed=3)
    assert not set(train["patient_id"]) & set(val["patient_id"]) and len(train) + len(val) == 300
    assert 20 <= len(val) <= 40 and val.equals(validation_split(real, 0.1, seed=3)[1])


def test_settings_compose_the_documented_sets():
    real, synth = _pool(100)
    count = {
        s: [len(p) for p in phases(s, real, synth, seed=0)]
        for s in ("all_original", "all_synthetic", "augmented", "pretrain_synthetic", "duplicate_real")
    }
    assert count == {
        "all_original": [100],
        "all_synthetic": [90],
        "augmented": [190],
        "pretrain_synthetic": [90, 100],
        "duplicate_real": [190],
    }
    dup = phases("duplicate_real", real, synth, seed=0)[0]
    assert set(dup["source"]) == {"real", "real-duplicate"} and dup["file"].str.startswith("r").all()
    mixed = phases("mixed", real, synth, seed=0)[0]
    assert len(mixed) == 100 and mixed["prompt_id"].is_unique  # each study once, real or its twin
    swapped = mixed[mixed["source"] == "synthetic"]
    assert 40 <= len(swapped) <= 50 and swapped["prompt_id"].isin(synth["prompt_id"]).all()
    assert mixed.equals(phases("mixed", real, synth, seed=0)[0]) and not mixed.equals(
        phases("mixed", real, synth, seed=1)[0]
    )


def test_auroc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    y, p = rng.random(500) < 0.2, np.round(rng.random(500), 1)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(auroc(np.zeros(5, dtype=bool), p[:5]))


def test_evaluate_reports_undefined_classes_and_matches_references():
    rng = np.random.default_rng(1)
    y = (rng.random((400, 14)) < 0.3).astype(float)
    y[:, 5] = 0  # no positives in the test set
    probs = np.clip(y * 0.3 + rng.random((400, 14)) * 0.7, 0, 1)
    mask = np.ones_like(y, dtype=bool)
    report = evaluate(y, probs, mask, CHEXPERT_LABELS, np.full(14, 0.5), bootstrap=100, seed=0)
    assert np.isnan(report.per_class["auc"][5]) and CHEXPERT_LABELS[5] not in report.averaged
    assert len(report.averaged) == 13
    defined = [c for c in range(14) if c != 5]
    assert report.overall["auc_macro"] == pytest.approx(np.mean([roc_auc_score(y[:, c], probs[:, c]) for c in defined]))
    assert report.overall["auprc_macro"] == pytest.approx(
        np.mean([average_precision_score(y[:, c], probs[:, c]) for c in defined])
    )
    assert report.overall["f1_micro_05"] == pytest.approx(f1_score(y.ravel(), probs.ravel() >= 0.5))
    low, high = report.intervals["auc_macro"]
    assert low < report.overall["auc_macro"] < high and f"auc_{CHEXPERT_LABELS[5]}" not in report.intervals


def test_tuned_thresholds_maximise_validation_f1():
    rng = np.random.default_rng(2)
    y = (rng.random((200, 14)) < 0.3).astype(float)
    probs = np.clip(y * 0.2 + rng.random((200, 14)) * 0.8, 0, 1)
    th = tune_thresholds(y, probs, np.ones_like(y, dtype=bool))
    for c in (0, 7):
        best = max(f1_score(y[:, c], probs[:, c] >= t, zero_division=0) for t in probs[:, c])
        assert f1_score(y[:, c], probs[:, c] >= th[c]) == pytest.approx(best)


def test_densenet_has_torchvision_shapes_and_reads_the_old_key_names():
    import torch
    from chexbench_classify.backbones import DenseNet121, canonical_keys

    net = DenseNet121()
    assert sum(p.numel() for p in net.parameters()) == 7_978_856  # torchvision.models.densenet121
    old = {k.replace("denselayer1.norm1.", "denselayer1.norm.1."): v for k, v in net.state_dict().items()}
    assert set(canonical_keys(old)) == set(net.state_dict())
    assert DenseNet121(num_outputs=14, width=8)(torch.rand(2, 3, 64, 64)).shape == (2, 14)


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_backbones_equal_torchvision_with_the_same_weights(name):
    """Runs in .venv-vision (make test-vision); the CPU stack has no torchvision."""
    torchvision = pytest.importorskip("torchvision", reason="torchvision lives in .venv-vision (make test-vision)")
    import torch
    from chexbench_classify.backbones import build

    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours, head = build(name, 1000, 64)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
    assert head == {"resnet50": "fc.", "densenet121": "classifier."}[name]


def test_xrv_densenet_takes_one_grey_channel_in_xrv_range_and_ignores_its_thresholds(tmp_path):
    import numpy as np
    import pandas as pd
    import torch
    from chexbench_classify.backbones import BACKBONES, XrvDenseNet121, build
    from chexbench_classify.data import ImageCache, LabelledImages
    from chexbench_classify.model import load_pretrained
    from PIL import Image

    published = XrvDenseNet121(num_outputs=18, width=8).state_dict()  # what torchxrayvision's state_dict() holds
    published["op_threshs"] = torch.rand(18)
    torch.save(published, tmp_path / "xrv.pth")
    net, _ = build("xrv-densenet121", 14, 8)
    load_pretrained(net, tmp_path / "xrv.pth", "xrv-densenet121")
    trunk = {k: v for k, v in published.items() if k.startswith("features.")}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in trunk.items())
    assert net.classifier.out_features == 14 and net.features.conv0.in_channels == 1
    # pixels: 0 -> -1024, 1 -> 1024 (torchxrayvision's normalize(img, 255) on 8-bit input), one channel
    Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).save(tmp_path / "g.png")
    frame = pd.DataFrame({"file": [tmp_path / "g.png"]})
    labels = np.zeros((1, 14), "f4"), np.ones((1, 14), "f4")
    x, _, _ = LabelledImages(frame, *labels, ImageCache(None, 2), normalise="xrv")[0]
    assert x.shape == (1, 2, 2) and x.min() == -1024 and x.max() == 1024
    assert BACKBONES["xrv-densenet121"].normalise == "xrv"


def test_xrv_densenet_equals_torchxrayvision_with_the_same_weights():
    """Runs in .venv-vision (make test-vision), where torchxrayvision is installed."""
    xrv = pytest.importorskip("torchxrayvision", reason="torchxrayvision lives in .venv-vision (make test-vision)")
    import torch
    from chexbench_classify.backbones import build

    torch.manual_seed(0)
    reference = xrv.models.DenseNet(weights=None).eval()
    ours, head = build("xrv-densenet121", 18, 64)
    state = {k: v for k, v in reference.state_dict().items() if k != "op_threshs"}
    ours.load_state_dict(state, strict=True)
    ours.eval()
    x = torch.rand(2, 1, 224, 224) * 2048 - 1024
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-4)
    assert head == "classifier."
