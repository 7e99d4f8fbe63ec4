"""Labels, settings, the validation split and the metrics against independent references."""

import numpy as np
import pandas as pd
import pytest
from chexbench_classify.labels import targets
from chexbench_classify.metrics import (
    Interval,
    auroc,
    draw_patients,
    draw_seeds,
    evaluate,
    interval,
    mean_over_seeds,
    patient_groups,
    resample_weights,
    tune_thresholds,
    weighted_auroc,
    weighted_average_precision,
)
from chexbench_classify.settings import phases, selection_rule, validation_split
from chexbench_schema import CHEXPERT_LABELS
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score


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


def test_a_phase_of_synthetic_images_only_never_selects_on_real_labels():
    real, synth = _pool(100)
    rules = {
        s: [selection_rule(p, "held-out-synthetic") for p in phases(s, real, synth, seed=0)]
        for s in ("all_original", "all_synthetic", "mixed", "augmented", "pretrain_synthetic", "duplicate_real")
    }
    assert rules == {
        "all_original": ["real-validation"],
        "all_synthetic": ["held-out-synthetic"],
        "mixed": ["real-validation"],
        "augmented": ["real-validation"],
        "pretrain_synthetic": ["held-out-synthetic", "real-validation"],
        "duplicate_real": ["real-validation"],
    }
    assert selection_rule(phases("all_synthetic", real, synth, 0)[0], "last-epoch") == "last-epoch"


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
    thresholds = np.full(14, 0.4)
    report = evaluate(y, probs, mask, CHEXPERT_LABELS, thresholds)
    assert np.isnan(report.per_class["auc"][5]) and CHEXPERT_LABELS[5] not in report.averaged
    assert len(report.averaged) == 13 and not report.intervals
    defined = [c for c in range(14) if c != 5]
    # every macro averages the same 13 labels (the undefined one is not a 0 in any of them)
    for macro, score in (
        ("auc_macro", lambda c: roc_auc_score(y[:, c], probs[:, c])),
        ("auprc_macro", lambda c: average_precision_score(y[:, c], probs[:, c])),
        ("f1_macro_05", lambda c: f1_score(y[:, c], probs[:, c] >= 0.5)),
        ("f1_macro_tuned", lambda c: f1_score(y[:, c], probs[:, c] >= 0.4)),
    ):
        assert report.overall[macro] == pytest.approx(np.mean([score(c) for c in defined]), abs=1e-12), macro
    assert np.isnan(report.per_class["f1_05"][5]) and report.per_class["prevalence"][5] == 0
    assert report.overall["f1_micro_05"] == pytest.approx(f1_score(y.ravel(), probs.ravel() >= 0.5))
    assert report.overall["auc_micro"] == pytest.approx(roc_auc_score(y.ravel(), probs.ravel()), abs=1e-12)
    assert report.overall["accuracy"] == pytest.approx(accuracy_score(y.ravel(), probs.ravel() >= 0.5))


def test_weighted_statistics_equal_scikit_learn_on_the_expanded_resample():
    """A resample as multiplicity weights gives scikit-learn's value on the resample written out row by row (ties,
    rows drawn several times, rows not drawn)."""
    rng = np.random.default_rng(3)
    y, scores = rng.random(80) < 0.3, np.round(rng.random(80), 1)  # many ties
    weights = rng.integers(0, 4, size=(25, 80)).astype(float)
    auc, ap = weighted_auroc(y, scores, weights), weighted_average_precision(y, scores, weights)
    for r, w in enumerate(weights.astype(int)):
        yr, sr = np.repeat(y, w), np.repeat(scores, w)
        assert auc[r] == pytest.approx(roc_auc_score(yr, sr), abs=1e-12)
        assert ap[r] == pytest.approx(average_precision_score(yr, sr), abs=1e-12)
    assert np.isnan(weighted_auroc(y, scores, np.where(y, 0.0, 1.0)[None]))[0]  # no positive drawn


def _clustered_test_set(n_patients: int = 60, seed: int = 4):
    """Patients with 1-4 images, a few rows without a patient id, 4 labels: a rare one (loses a class in some
    resamples), one with uncertain entries left out (U-Ignore), one without positives (outside the label set)."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"pat{i}" for i in range(n_patients)], rng.integers(1, 5, n_patients)).astype(object)
    patients[rng.choice(len(patients), 5, replace=False)] = None
    n = len(patients)
    y = (rng.random((n, 4)) < [0.3, 0.4, 0.5, 0.0]).astype(float)
    y[:, 0] = 0
    y[rng.choice(n, 3, replace=False), 0] = 1  # rare
    probs = np.clip(0.35 * y + 0.65 * rng.random((n, 4)), 0, 1)
    mask = np.ones((n, 4), dtype=bool)
    mask[rng.random(n) < 0.2, 2] = False
    frame = pd.DataFrame({"patient_id": patients, "prompt_id": [f"p{i}" for i in range(n)]})
    return frame, y, probs, mask


def _resample_rows(groups, drawn) -> np.ndarray:
    """The test rows of a resample written out: every row of every drawn patient, as often as it is drawn."""
    patients = list(dict.fromkeys(groups))  # numbered in order of first appearance
    rows_of = {p: np.flatnonzero(groups == p) for p in patients}
    return np.concatenate([rows_of[patients[k]] for k in drawn])


def _reference(y, probs, mask, rows, classes, label_set, thresholds):
    """Every metric of one resample, computed with scikit-learn on the resample's rows; NaN where not kept."""
    out = {}
    for c, label in enumerate(classes):
        keep = rows[mask[rows, c]]
        yc, pc = y[keep, c], probs[keep, c]
        both = 0 < yc.sum() < len(yc)
        out[f"prevalence_{label}"] = yc.mean()
        out[f"auc_{label}"] = roc_auc_score(yc, pc) if both else np.nan
        out[f"auprc_{label}"] = average_precision_score(yc, pc) if both else np.nan
        out[f"f1_05_{label}"] = f1_score(yc, pc >= 0.5, zero_division=0) if both else np.nan
        out[f"f1_tuned_{label}"] = f1_score(yc, pc >= thresholds[c], zero_division=0) if both else np.nan
    macros = (("auc_macro", "auc"), ("auprc_macro", "auprc"), ("f1_macro_05", "f1_05"), ("f1_macro_tuned", "f1_tuned"))
    for macro, name in macros:
        out[macro] = np.mean([out[f"{name}_{label}"] for label in label_set])  # NaN if a label lost a class
    entries = mask[rows]
    flat_y, flat_p = y[rows][entries], probs[rows][entries]
    out["auc_micro"] = roc_auc_score(flat_y, flat_p)
    out["f1_micro_05"] = f1_score(flat_y, flat_p >= 0.5)
    out["accuracy"] = accuracy_score(flat_y, flat_p >= 0.5)
    return out


def test_patient_bootstrap_intervals_match_an_independent_recomputation():
    """Each interval is the percentile interval (numpy) of scikit-learn's values on the resamples written out patient
    by patient; resamples where a label of the row's set lost a class are not kept, and counted."""
    frame, y, probs, mask = _clustered_test_set()
    classes = ("Rare", "Common", "Uncertain", "Absent")
    thresholds = np.array([0.5, 0.45, 0.55, 0.5])
    groups = patient_groups(frame["patient_id"], frame["prompt_id"])
    patients = frame["patient_id"].dropna().nunique() + frame["patient_id"].isna().sum()
    assert len(set(groups)) == patients  # a row without a patient id is its own patient
    draws = draw_patients(patients, 200, seed=7)
    report = evaluate(y, probs, mask, classes, thresholds, weights=resample_weights(groups, draws), level=0.9)
    assert report.averaged == ("Rare", "Common", "Uncertain")
    references = [
        _reference(y, probs, mask, _resample_rows(groups, d), classes, report.averaged, thresholds) for d in draws
    ]
    for name in [*references[0]]:
        values = np.array([r[name] for r in references])
        kept = values[~np.isnan(values)]
        got = report.intervals[name]
        if name.endswith("_Absent") and not name.startswith("prevalence"):
            assert got.kept == 0 and got.low is None
            continue
        assert got.kept == len(kept) and got.total == 200, name
        assert (got.low, got.high) == pytest.approx(tuple(np.percentile(kept, [5, 95])), abs=1e-12), name
    assert 0 < report.intervals["auc_Rare"].kept < 200  # the rare label did lose a class in some resamples
    assert report.intervals["auc_macro"].kept == report.intervals["auc_Rare"].kept
    assert report.intervals["auc_Common"].kept == 200


def test_an_interval_needs_half_of_the_resamples_kept():
    """On a tiny test set most resamples lose a class of some label: the few kept ones are no sampling distribution."""
    values = np.r_[np.linspace(0, 1, 49), np.full(51, np.nan)]
    assert interval(values, 0.95) == Interval(None, None, 49, 100)
    values[49] = 0.5
    got = interval(values, 0.95)
    assert got.kept == 50 and (got.low, got.high) == pytest.approx(tuple(np.percentile(values[:50], [2.5, 97.5])))


def test_mean_over_seeds_interval_resamples_patients_and_seeds():
    """The two-level bootstrap: each replicate draws seeds and patients; its value is the drawn seeds' mean metric
    on the drawn patients (scikit-learn on the written-out resample)."""
    frame, y, probs, mask = _clustered_test_set(seed=5)
    rng = np.random.default_rng(6)
    seeds = [np.clip(probs + 0.1 * rng.standard_normal(probs.shape), 0, 1) for _ in range(3)]
    classes, thresholds = ("Rare", "Common", "Uncertain", "Absent"), np.full(4, 0.5)
    groups = patient_groups(frame["patient_id"], frame["prompt_id"])
    draws = draw_patients(len(set(groups)), 100, seed=1)
    weights = resample_weights(groups, draws)
    reports = [evaluate(y, p, mask, classes, thresholds, weights=weights) for p in seeds]
    seed_draws = draw_seeds(3, 100, seed=2)
    means = mean_over_seeds(reports, seed_draws, level=0.95)
    names = ("auc_macro", "auc_Common", "f1_05_Rare")
    values = {name: [] for name in names}
    for drawn, chosen in zip(draws, seed_draws, strict=True):
        rows = _resample_rows(groups, drawn)
        per_seed = [_reference(y, seeds[s], mask, rows, classes, reports[0].averaged, thresholds) for s in range(3)]
        for name in names:
            values[name].append(np.mean([per_seed[s][name] for s in chosen]))
    for name in names:
        kept = np.array(values[name])[~np.isnan(values[name])]
        got = means[name]
        assert got.value == pytest.approx(np.mean([r.values()[name] for r in reports]), abs=1e-12)
        assert got.std == pytest.approx(np.std([r.values()[name] for r in reports], ddof=1), abs=1e-12)
        assert got.interval.kept == len(kept), name
        assert (got.interval.low, got.interval.high) == pytest.approx(
            tuple(np.percentile(kept, [2.5, 97.5])), abs=1e-12
        )


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
    x, _, _, index = LabelledImages(frame, *labels, ImageCache(None, 2), normalise="xrv")[0]
    assert x.shape == (1, 2, 2) and x.min() == -1024 and x.max() == 1024 and index == 0
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
