"""The control ladder: what each strength does to an image, the per-strength reading, the detection limit, and the
cause named when exact or mild copies slip through — each cause on a case built to have it."""

import numpy as np
import pandas as pd
import pytest
from chexbench_privacy.controls import View, describe_limit, detection_limit, diagnose, ladder
from chexbench_privacy.ladder import LADDER, NAMES, augment
from PIL import Image

SPACE = View("space", "DCR", 0.10, "0.05 quantile of the holdout's DCR", "flag_space", "rank1_space", "dcr_space")


def test_the_ladder_is_ordered_and_exact_is_only_the_resize():
    assert NAMES == ("exact", "mild", "moderate", "strong")
    for weaker, stronger in zip(LADDER, LADDER[1:], strict=False):
        assert stronger.crop <= weaker.crop and stronger.gamma >= weaker.gamma and stronger.noise >= weaker.noise
    grey = np.random.default_rng(0).uniform(0.2, 0.8, (96, 80))
    out, record = augment(grey, 48, LADDER[0], np.random.default_rng(1))
    resized = np.asarray(Image.fromarray(grey.astype(np.float32), mode="F").resize((48, 48), Image.BILINEAR))
    assert np.allclose(out, resized, atol=1e-6)
    assert record == {
        "strength": "exact",
        "crop": 1.0,
        "crop_top": 0,
        "crop_left": 0,
        "gamma": 1.0,
        "contrast": 1.0,
        "noise": 0.0,
    }


@pytest.mark.parametrize("strength", LADDER[1:], ids=lambda s: s.name)
def test_each_strength_changes_the_image_by_its_stated_amounts(strength):
    rng = np.random.default_rng(2)
    grey = rng.uniform(0.2, 0.8, (200, 200))
    out, record = augment(grey, 64, strength, np.random.default_rng(3))
    assert out.shape == (64, 64) and out.min() >= 0 and out.max() <= 1
    assert abs(record["gamma"] - 1) == pytest.approx(strength.gamma)
    assert abs(record["contrast"] - 1) == pytest.approx(strength.contrast)
    side = round(200 * strength.crop)
    assert 0 <= record["crop_top"] <= 200 - side and 0 <= record["crop_left"] <= 200 - side
    # the same seed gives the same copy
    again, _ = augment(grey, 64, strength, np.random.default_rng(3))
    assert np.array_equal(out, again)


def frame(holdout_dcr, copies):
    """holdout DCRs and control rows (strength, dcr, flagged, rank1)."""
    rows = [{"set": "holdout", "strength": None, "dcr_space": d} for d in holdout_dcr]
    rows += [
        {"set": "control", "strength": s, "dcr_space": d, "flag_space": f, "rank1_space": r} for s, d, f, r in copies
    ]
    out = pd.DataFrame(rows)
    out["flag_space"] = out["flag_space"].fillna(False).astype(bool)
    out["rank1_space"] = out["rank1_space"].fillna(False).astype(bool)
    return out


HOLDOUT = np.linspace(0.11, 0.5, 20)  # no holdout image as close as an exact copy (0.01)
EXACT = [("exact", 0.01, True, True)] * 4


def test_every_copy_caught_needs_no_warning_and_reads_per_strength():
    per_image = frame(HOLDOUT, EXACT + [("mild", 0.05, True, True)] * 4 + [("strong", 0.3, False, False)] * 4)
    assert diagnose(per_image, SPACE, 0.05, "patient-disjoint") == []
    steps = ladder(per_image, SPACE, 0.95)
    assert [s["strength"] for s in steps] == ["exact", "mild", "strong"]
    assert steps[2]["caught"] == 0 and steps[2]["rank1"] == 0 and steps[0]["sensitivity"] == 1.0
    assert detection_limit(steps) == "mild" and "up to 'mild'" in describe_limit(steps)


def test_copies_not_nearest_their_source_blame_the_augmentation():
    per_image = frame(HOLDOUT, EXACT + [("mild", 0.2, False, False)] * 3 + [("mild", 0.05, True, True)])
    (warning,) = diagnose(per_image, SPACE, 0.05, "patient-disjoint")
    assert "3 of 4 mild copies not caught" in warning and "augmentation strength" in warning
    assert "rank-1 recovery 1/4" in warning


def test_copies_found_but_farther_than_most_new_images_blame_the_augmentation():
    per_image = frame(HOLDOUT, EXACT + [("mild", 0.45, False, True)] * 4)
    (warning,) = diagnose(per_image, SPACE, 0.05, "patient-disjoint")
    assert "augmentation strength" in warning and "look like new images" in warning and "85%" in warning


def test_a_holdout_with_near_copies_of_the_pool_is_named():
    holdout = np.r_[[0.005, 0.008], np.linspace(0.2, 0.5, 18)]  # 2 of 20 (10 % >= 5 %) as close as exact copies
    per_image = frame(holdout, [("exact", 0.01, False, True)] * 4 + [("mild", 0.03, False, True)] * 4)
    warnings = diagnose(per_image, SPACE, 0.05, "image-disjoint (patient ids missing)")
    assert len(warnings) == 2 and all("the holdout overlaps the training pool" in w for w in warnings)
    assert "2 of 20 holdout images" in warnings[0] and "patient ids missing" in warnings[0]


def test_copies_found_and_nearer_than_the_holdout_but_above_the_threshold_blame_the_threshold():
    per_image = frame(HOLDOUT, EXACT + [("mild", 0.12, False, True)] * 4)
    (warning,) = diagnose(per_image, SPACE, 0.05, "patient-disjoint")
    assert "cause: the threshold" in warning and "would flag 5% of the holdout" in warning


def test_no_exact_copy_caught_means_no_detection_limit():
    steps = ladder(frame(HOLDOUT, [("exact", 0.2, False, True), ("exact", 0.01, True, True)]), SPACE, 0.95)
    assert detection_limit(steps) is None and "not every exact copy caught" in describe_limit(steps)
