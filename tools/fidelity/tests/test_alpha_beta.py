"""α-precision / β-recall against synthcity's own implementation (read from the installed wheel, run on the same
features), their behaviour on shifted data, and the per-image table of a fidelity run."""

import ast
import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from chexbench_fidelity.alpha_beta import alpha_beta
from sklearn.neighbors import NearestNeighbors


def synthcity_metrics():
    """synthcity 0.2.12's AlphaPrecision.metrics, compiled alone (importing synthcity needs its heavy dependencies)."""
    spec = importlib.util.find_spec("synthcity")
    source = Path(spec.submodule_search_locations[0], "metrics", "eval_statistical.py").read_text()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "AlphaPrecision")
    method = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "metrics")
    method.decorator_list = []  # pydantic's argument validation, not part of the computation
    namespace = {"np": np, "NearestNeighbors": NearestNeighbors, "Optional": Optional, "Tuple": tuple}
    exec(compile(ast.Module([method], []), "synthcity_alpha_precision", "exec"), namespace)  # noqa: S102
    return lambda real, synth: namespace["metrics"](None, real, synth)


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0])
def test_equals_synthcity_on_the_same_features(shift):
    rng = np.random.default_rng(int(shift * 10))
    real, synth = rng.normal(size=(300, 12)), rng.normal(loc=shift, size=(300, 12))
    alphas, precision, recall, d_precision, d_recall, _ = synthcity_metrics()(real, synth)
    ours = alpha_beta(real, synth)
    assert np.allclose(ours.alphas, alphas)
    assert np.allclose(ours.precision_curve, precision) and np.allclose(ours.recall_curve, recall)
    assert ours.alpha_precision == pytest.approx(d_precision, abs=1e-12)
    assert ours.beta_recall == pytest.approx(d_recall, abs=1e-12)


def test_same_distribution_scores_high_and_a_shift_scores_lower():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 8))
    same = alpha_beta(real, rng.normal(size=(500, 8)))
    far = alpha_beta(real, rng.normal(loc=3, size=(500, 8)))
    assert same.alpha_precision > 0.85 and far.alpha_precision < 0.2 and far.beta_recall < same.beta_recall


def test_per_image_levels():
    real = np.array([[0.0], [1.0], [2.0], [-1.0], [-2.0]])
    synth = np.array([[0.1], [5.0]])
    result = alpha_beta(real, synth)
    # |s - centre|: 0.1 is beyond 1 of the 5 real radii (0), 5.0 beyond all of them
    assert result.synth_alpha_level.tolist() == [0.2, 1.0]
    assert result.real_covered.tolist() == [True, True, False, False, False]  # 1.0: synthetic 0.1 at 0.9 < 1
    assert result.real_nn_synth.tolist() == [0, 0, 0, 0, 0]
