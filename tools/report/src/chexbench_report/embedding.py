"""The embedding map (PCA or UMAP of real and synthetic features, per extractor) and the per-image outliers: the
synthetic images farthest from their nearest real image.

PCA (the default) is exact, linear and fitted on every vector, so distances along its axes mean something and the
picture is the same on every machine. UMAP (umap-learn, `--map umap`) shows neighbourhoods instead: whether synthetic
images form their own islands. It is fitted on the points drawn (at most MAX_POINTS per set) with a fixed seed; its
first call in a process spends ~13 s compiling (numba)."""

from __future__ import annotations

import numpy as np
from chexbench_common.neighbours import nearest
from chexbench_schema import read_embeddings
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .collect import Run, Stage
from .sources import Pictures

MAX_POINTS = 600  # per set and map: more points add no information to a picture and weigh down the page
OUTLIERS = 8
OUTLIER_SPACES = ("raddino", "dinov2", "inception")  # the space of the outlier search, first present
SEED = 0
UMAP_NEIGHBOURS = 15  # umap-learn's default, capped by the number of points
UMAP_MIN_POINTS = 10  # below this UMAP's spectral layout is meaningless: PCA is drawn instead, with a note


def _tables(embed: Stage) -> dict[str, dict]:
    """extractor -> {real, synthetic} embeddings tables embed wrote (not the classifier logits)."""
    found: dict[str, dict] = {}
    for key, rel in embed.manifest.get("outputs", {}).items():
        source, _, extractor = key.partition("-")
        if source in ("real", "synthetic") and extractor and not extractor.endswith("logits"):
            found.setdefault(extractor, {})[source] = embed.folder / rel
    return {e: t for e, t in sorted(found.items()) if set(t) == {"real", "synthetic"}}


def _finite(table):
    keep = np.isfinite(table.vectors).all(axis=1)
    return table.frame["image_id"].to_numpy()[keep], table.vectors[keep]


def _shown(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, MAX_POINTS, replace=False)) if n > MAX_POINTS else np.arange(n)


def embedding_section(run: Run, pictures: Pictures | None, method: str = "pca") -> dict | None:
    embed = run.finished("embed")
    if embed is None:
        return None
    maps, notes, spaces = [], [], {}
    for extractor, paths in _tables(embed).items():
        real_ids, real = _finite(read_embeddings(paths["real"]))
        synth_ids, synth = _finite(read_embeddings(paths["synthetic"]))
        if min(len(real), len(synth)) < 2 or real.shape[1] < 2:
            notes.append(f"{extractor}: too few finite vectors for a map ({len(real)} real, {len(synth)} synthetic)")
            continue
        spaces[extractor] = (real_ids, real, synth_ids, synth)
        rng = np.random.default_rng(SEED)
        r, s = _shown(len(real), rng), _shown(len(synth), rng)
        projection, drawn = _umap if method == "umap" else _pca, len(r) + len(s)
        if projection is _umap and drawn < UMAP_MIN_POINTS:
            notes.append(f"{extractor}: UMAP needs at least {UMAP_MIN_POINTS} points, {drawn} here: PCA is drawn")
            projection = _pca
        maps.append(
            {"extractor": extractor, "n_real": len(real), "n_synth": len(synth)} | projection(real, synth, r, s)
        )
    return {"method": method, "maps": maps, "outliers": _outliers(spaces, pictures), "notes": notes}


def _pca(real: np.ndarray, synth: np.ndarray, r: np.ndarray, s: np.ndarray) -> dict:
    """PCA of the standardised features, fitted on every vector; the drawn points projected."""
    pca = make_pipeline(StandardScaler(), PCA(n_components=2, random_state=SEED)).fit(np.vstack([real, synth]))
    explained = [round(float(v), 4) for v in pca[-1].explained_variance_ratio_]
    return {
        "method": "pca",
        "axes": [f"PC{k + 1} ({100 * v:.1f}% of variance)" for k, v in enumerate(explained)],
        "explained": explained,
        "real": np.round(pca.transform(real[r]), 4).tolist(),
        "synthetic": np.round(pca.transform(synth[s]), 4).tolist(),
    }


def _umap(real: np.ndarray, synth: np.ndarray, r: np.ndarray, s: np.ndarray) -> dict:
    """UMAP of the standardised drawn points (umap-learn, fixed seed, one thread so the seed holds)."""
    import umap  # numba: imported only when asked for (2 s to import, ~13 s to compile on first use)

    drawn = np.vstack([real[r], synth[s]]).astype(np.float64)
    neighbours = min(UMAP_NEIGHBOURS, len(drawn) - 1)
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=SEED, n_jobs=1)
    coords = np.round(reducer.fit_transform(StandardScaler().fit_transform(drawn)), 4)
    return {
        "method": "umap",
        "axes": ["UMAP 1", "UMAP 2"],
        "n_neighbors": neighbours,
        "real": coords[: len(r)].tolist(),
        "synthetic": coords[len(r) :].tolist(),
    }


def _outliers(spaces: dict, pictures: Pictures | None) -> dict | None:
    """The OUTLIERS synthetic images with the largest Euclidean distance to their nearest real image."""
    extractor = next((e for e in OUTLIER_SPACES if e in spaces), next(iter(spaces), None))
    if extractor is None:
        return None
    real_ids, real, synth_ids, synth = spaces[extractor]
    distance, index = nearest(synth, real, 1)
    order = np.argsort(-distance[:, 0], kind="stable")[:OUTLIERS]
    synth_files, real_files, prompts = {}, {}, {}
    if pictures is not None:
        synth_files = dict(zip(pictures.synth["image_id"], pictures.synth["file"], strict=True))
        real_files = dict(zip(pictures.real["prompt_id"], pictures.real["file"], strict=True))
        if "prompt" in pictures.synth:
            prompts = dict(zip(pictures.synth["image_id"], pictures.synth["prompt"], strict=True))
    rows = []
    for i in order:
        near = str(real_ids[index[i, 0]])
        synth_file, real_file = synth_files.get(synth_ids[i]), real_files.get(near)
        rows.append(
            {
                "image_id": str(synth_ids[i]),
                "distance": float(distance[i, 0]),
                "nearest_real": near,
                "prompt": prompts.get(synth_ids[i]),
                "file": str(synth_file) if synth_file is not None and synth_file.is_file() else None,
                "real_file": str(real_file) if real_file is not None and real_file.is_file() else None,
            }
        )
    median = float(np.median(distance[:, 0]))
    return {"extractor": extractor, "median_distance": median, "rows": rows}
