import numpy as np
import pytest
import scipy.linalg
from chexbench_fidelity.frd import frechet_radiomics_distance, zscore_with_real


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Correlated, differently scaled columns, like radiomics features."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((d, d)) / np.sqrt(d)
    scale = np.logspace(-3, 6, d)
    return ((rng.standard_normal((n, d)) + shift) @ mix + 5.0) * scale


def reference(real: np.ndarray, synth: np.ndarray) -> float:
    """ln FD by the textbook route: numpy z-scores, np.cov, scipy.linalg.sqrtm."""
    mean, std = real.mean(0), real.std(0)
    zr, zs = (real - mean) / std, (synth - mean) / std
    cr, cs = np.cov(zr, rowvar=False), np.cov(zs, rowvar=False)
    covmean = scipy.linalg.sqrtm(cr @ cs).real
    diff = zr.mean(0) - zs.mean(0)
    return float(np.log(diff @ diff + np.trace(cr) + np.trace(cs) - 2 * np.trace(covmean)))


def test_matches_independent_computation_after_dropping_bad_features():
    real, synth = features(300, 12, 0), features(250, 12, 1, shift=0.3)
    inf_column = features(250, 1, 6)
    inf_column[10] = np.inf
    bad_real = [np.full((300, 1), np.nan), np.full((300, 1), 4.0), features(300, 1, 5)]
    bad_synth = [np.ones((250, 1)), np.arange(250.0)[:, None], inf_column]  # NaN real, constant real, one inf
    real_all, synth_all = (
        np.hstack([bad_real[0], real, *bad_real[1:]]),
        np.hstack([bad_synth[0], synth, *bad_synth[1:]]),
    )
    synth_all = np.vstack([synth_all, np.full(synth_all.shape[1], np.nan)])  # a flat image
    value, used, note = frechet_radiomics_distance(real_all, synth_all)
    assert used == 12
    assert value == pytest.approx(reference(real, synth), rel=1e-9)
    assert "1 synthetic image(s)" in note and "2 feature(s) not finite" in note and "1 feature(s) constant" in note


def test_known_distance_and_invariance_to_feature_units():
    real = features(400, 8, 2)
    mean, std = real.mean(0), real.std(0)
    synth = real + 0.5 * std  # every z-scored feature shifted by 0.5, covariance unchanged
    value, used, note = frechet_radiomics_distance(real, synth)
    assert (used, note) == (8, "")
    assert value == pytest.approx(np.log(8 * 0.25), rel=1e-9)
    a, b = np.linspace(0.1, 1e4, 8), np.linspace(-3, 3, 8)  # per-feature units: z-scores do not see them
    other = features(300, 8, 3, shift=0.2)
    assert frechet_radiomics_distance(real * a + b, other * a + b)[0] == pytest.approx(
        frechet_radiomics_distance(real, other)[0], rel=1e-9
    )
    assert frechet_radiomics_distance(real, features(300, 8, 4))[0] < frechet_radiomics_distance(real, other)[0]
    assert np.isclose(mean, real.mean(0)).all()


def test_identical_sets_and_errors():
    real = features(50, 4, 7)
    value, _, note = frechet_radiomics_distance(real, real.copy())
    assert value < -15 or (value == -np.inf and "-inf" in note)
    with pytest.raises(ValueError, match="same d"):
        zscore_with_real(real, real[:, :3])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_radiomics_distance(real, real[:1])
    with pytest.raises(ValueError, match="no feature"):
        frechet_radiomics_distance(np.ones((5, 3)), np.ones((5, 3)))


def test_fewer_images_than_features_takes_the_exact_sample_route():
    real, synth = features(30, 60, 3), features(25, 60, 4, shift=0.2)  # n < d: singular covariances
    value, used, _ = frechet_radiomics_distance(real, synth)
    assert used == 60
    assert value == pytest.approx(reference(real, synth), rel=1e-6)
