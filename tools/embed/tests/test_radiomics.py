import importlib.util
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from chexbench_common.imageio import load_grey
from chexbench_embed.radiomics import FEATURE_CLASSES, IMAGE_TYPES, RadiomicsTransform
from PIL import Image


@pytest.fixture(scope="module")
def transform():
    return RadiomicsTransform()


@pytest.fixture(scope="module")
def chest():
    spec = importlib.util.find_spec("data_store")
    if spec is None:
        pytest.fail("pydicom-data is not installed: run make setup")
    return load_grey(Path(spec.origin).parent / "data" / "RG1_UNCR.dcm")


def picture(seed: int, side: int = 384) -> np.ndarray:
    """Anatomy-scale structure plus noise in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    grey = 0.5 + 0.3 * np.sin(7 * x + seed) * np.cos(5 * y) + 0.05 * rng.standard_normal((side, side))
    return np.clip(grey, 0, 1).astype(np.float32)


def _extract(args):
    transform, grey = args
    return transform.apply(grey)


def test_feature_count_is_the_librarys_own(transform):
    from radiomics import getFeatureClasses

    classes = getFeatureClasses()
    per_image = sum(
        len(names) or sum(not deprecated for deprecated in classes[c].getFeatureNames().values())
        for c, names in FEATURE_CLASSES.items()
    )
    images = 1 + len(IMAGE_TYPES["LoG"]["sigma"]) + 4  # Original, LoG per sigma, 2-D wavelet LL LH HL HH
    names = transform.feature_names()
    assert len(names) == images * per_image == len(set(names))
    prefixes = {n.split("_")[0] for n in names}
    assert prefixes == {"original", "wavelet-LL", "wavelet-LH", "wavelet-HL", "wavelet-HH"} | {
        f"log-sigma-{s:.1f}".replace(".", "-") + "-mm-3D" for s in IMAGE_TYPES["LoG"]["sigma"]
    }
    assert {n.split("_")[1] for n in names} == set(FEATURE_CLASSES)
    assert transform.describe()["n_features"] == len(names)


def test_real_chest_is_finite_deterministic_and_the_same_in_a_worker(transform, chest):
    first = transform.apply(chest)
    assert first.dtype == np.float32 and first.shape == (len(transform.feature_names()),)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(transform.apply(chest), first)
    copy = pickle.loads(pickle.dumps(transform))
    with ProcessPoolExecutor(1) as pool:
        np.testing.assert_array_equal(next(pool.map(_extract, [(copy, chest)])), first)


def test_synthetic_pictures_finite_and_distinct(transform):
    a, b = transform.apply(picture(1)), transform.apply(picture(2))
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert not np.allclose(a, b)


def test_resolution_is_normalised_away(transform, chest):
    """The same radiograph at native size and at 1024 px gives nearly the same vector (both resized to 512)."""
    small = np.asarray(Image.fromarray(chest).resize((1024, 1024), Image.Resampling.BICUBIC), dtype=np.float32)
    native, resized = transform.apply(chest), transform.apply(small)
    names = transform.feature_names()
    first = np.array([n.startswith("original_firstorder") for n in names])
    np.testing.assert_allclose(resized[first], native[first], rtol=0.05, atol=1.0)
    assert np.median(np.abs(resized - native) / (np.abs(native) + 1e-6)) < 0.05


def test_flat_image_gives_nan_and_wrong_shape_raises(transform):
    assert np.isnan(transform.apply(np.full((64, 80), 0.3, np.float32))).all()
    with pytest.raises(ValueError, match="grey"):
        transform.apply(np.zeros((8, 8, 3), np.float32) + np.arange(3))


def test_radiomics_extractor_through_embed(tmp_path, image_sets, embed):
    """The extractor writes NaN-tolerant tables whose vectors are the transform's, and caches the real set."""
    import json

    from chexbench_schema import read_embeddings

    args = ("run", "--model", "m", *image_sets["real"], "--extractor", "radiomics", "--num-workers", "1")
    assert embed(*args).exit_code == 0
    table = read_embeddings(tmp_path / "Results" / "m" / "default" / "embed" / "real-radiomics.parquet")
    assert table.metadata["extra"]["non_finite"] == "allowed" and table.vectors.shape[1] == 693
    first = image_sets["real_root"] / image_sets["real_names"][0]
    np.testing.assert_array_equal(table.vectors[0], RadiomicsTransform().apply(load_grey(first)))
    again = embed(*args, "--force", "--run-id", "second")
    assert again.exit_code == 0
    manifest = json.loads((tmp_path / "Results" / "m" / "second" / "embed" / "manifest.json").read_text())
    assert manifest["counts"]["real"]["radiomics"]["extracted"] == 0  # all from the content-addressed cache
