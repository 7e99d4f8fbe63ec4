"""The embedding map: PCA against numpy's SVD, UMAP against umap-learn called directly on the same points, the
fallback when there are too few points for UMAP, and the one error line when umap-learn is missing."""

import importlib.util

import numpy as np
import pytest
from report_world import report_json, run_args


def _standardised(real, synth):
    both = np.vstack([real, synth]).astype(float)
    return (both - both.mean(axis=0)) / both.std(axis=0)


def test_pca_map_is_the_svd_of_the_standardised_vectors(report_cli, results, full_run):
    assert report_cli(*run_args(results), "--map", "pca").exit_code == 0
    (page_map,) = report_json(full_run)["embedding"]["maps"]
    real, synth = full_run.embeddings["real"][1], full_run.embeddings["synthetic"][1]
    x = _standardised(real, synth)
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    expected = x @ vt[:2].T
    got = np.vstack([page_map["real"], page_map["synthetic"]])
    signs = np.sign((got * expected).sum(axis=0))  # a principal axis is defined up to its sign
    assert page_map["method"] == "pca" and page_map["axes"][0].startswith("PC1 (")
    np.testing.assert_allclose(got, expected * signs, atol=2e-4)  # the page rounds to 4 decimals
    np.testing.assert_allclose(page_map["explained"], (singular**2 / (singular**2).sum())[:2], atol=1e-4)


def test_umap_map_is_umap_learn_on_the_same_points(report_cli, results, full_run):
    umap = pytest.importorskip("umap")  # requirements/dev.txt pins it: skipped only outside the CPU stack
    result = report_cli(*run_args(results), "--map", "umap")
    assert result.exit_code == 0, result.output
    report = report_json(full_run)
    (page_map,) = report["embedding"]["maps"]
    real, synth = full_run.embeddings["real"][1], full_run.embeddings["synthetic"][1]
    n = len(real) + len(synth)
    reference = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=0, n_jobs=1)
    expected = reference.fit_transform(_standardised(real, synth))
    got = np.vstack([page_map["real"], page_map["synthetic"]])
    assert report["embedding"]["method"] == "umap" and page_map["method"] == "umap"
    assert page_map["n_neighbors"] == min(15, n - 1) and page_map["axes"] == ["UMAP 1", "UMAP 2"]
    np.testing.assert_allclose(got, expected, atol=2e-4)
    page = (full_run.dir / "report" / "report.html").read_text()
    assert 'data-map="umap"' in page and "UMAP (umap-learn" in page
    # the map is part of the skip key: back to PCA redoes the page
    again = report_cli(*run_args(results), "--map", "pca")
    assert again.exit_code == 0 and "up to date" not in again.stderr
    assert report_json(full_run)["embedding"]["method"] == "pca"


def test_too_few_points_for_umap_draws_pca_and_says_so(full_run, monkeypatch):
    from chexbench_report import embedding
    from chexbench_report.collect import load_run

    monkeypatch.setattr(embedding, "UMAP_MIN_POINTS", 1000)
    section = embedding.embedding_section(load_run(full_run.dir.parent.parent, "m", "r"), None, "umap")
    (page_map,) = section["maps"]
    assert page_map["method"] == "pca"
    assert section["notes"] == ["raddino: UMAP needs at least 1000 points, 18 here: PCA is drawn"]


def test_umap_without_umap_learn_is_one_error_line_and_writes_nothing(report_cli, results, full_run, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else find_spec(name, *a))
    result = report_cli(*run_args(results), "--map", "umap")
    assert result.exit_code == 5, result.output
    assert result.stderr.strip().splitlines() == [
        "chexbench-report: error: --map umap needs umap-learn (pip install umap-learn==0.5.12); or use --map pca"
    ]
    assert not (full_run.dir / "report").exists()
