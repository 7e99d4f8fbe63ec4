"""The validation pool: pseudo-patients rendered from the demo chest CT, so that known-answer sets can be split by
patient and a patient-disjoint split means something.

Every pseudo-patient is the one CT with traits of its own, drawn once from a seeded generator: a body habitus (the
projection stretched left-right, the antero-posterior path scaled), an exposure (the effective attenuation
coefficient) and a display gamma, a field of view (the side of the crop window and where it sits) and a base pose.
Its views sit on a fixed pattern around that pose (±2° rotation, ±1.5° tilt, then the centre), with a little
per-view jitter of pose, exposure and window placement: far enough apart that a privacy-ladder "mild" copy of a
view stays nearer its source than to the patient's other views, near enough that a patient's views are nearer each
other than other patients' views in the FID Inception space (measured: tools/bench/README.md).

Habitus, exposure, gamma and the field act on the 2-D projection (a parallel beam makes a left-right stretch of the
body a stretch of its projection), so a view costs one 3-D resampling, of the pose. The CT is resampled to 2.5 mm,
its own slice spacing (half the work of the demo's 2 mm grid). Intensities are windowed once, from the neutral
patient's straight view, so exposure and habitus change brightness as they would on a detector.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .drr import WATER_MU_PER_MM, Pose, load_attenuation, path_length

POOL_VOXEL_MM = 2.5
RENDER_VERSION = 1  # part of every cache key: raise it whenever a change to this module changes the pixels
MAX_VIEWS = 6
# (rotation, tilt) steps of a patient's views around its base pose, in units of VIEW_STEP
VIEW_PATTERN = ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, 0), (0, 2))
VIEW_STEP = (2.0, 1.5)  # degrees of rotation, of tilt
VIEW_JITTER = {"pose_deg": 0.3, "exposure": 0.03, "field_shift": 0.08}
TRAIT_RANGES = {
    "width": (0.8, 1.2),
    "depth": (0.85, 1.2),
    "exposure": (0.85, 1.15),
    "log_gamma": (float(np.log(0.85)), float(np.log(1.5))),
    "field": (0.78, 1.0),
    "field_shift": (-0.5, 0.5),
    "rotation_deg": (-12.0, 12.0),
    "tilt_deg": (-6.0, 6.0),
}
TILT_MARGIN = 0.06  # rows cut at the top and bottom: tilting leaves empty bands there (as the demo's DRRs)
WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Traits:
    """What makes one pseudo-patient: habitus, exposure, display, field of view and base pose."""

    width: float  # left-right stretch of the projection
    depth: float  # antero-posterior path-length scale
    exposure: float  # effective attenuation coefficient, relative to the demo's
    gamma: float  # display curve after windowing
    field: float  # side of the field of view, as a fraction of the full projection
    field_shift: tuple[float, float]  # (down, right) placement of that window, -1..1 of the free margin
    pose: Pose


@dataclass(frozen=True)
class View:
    patient_id: str
    index: int
    traits: Traits
    pose: Pose
    exposure: float  # this view's exposure factor (the patient's, jittered)
    field_shift: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.patient_id}_v{self.index}.png"

    def record(self) -> dict:
        """Every parameter of the view, flat (patients.csv, the cache key)."""
        traits = asdict(self.traits)
        pose = traits.pop("pose")
        shift = traits.pop("field_shift")
        return {
            "patient_id": self.patient_id,
            "view": self.index,
            "image_path": self.name,
            **{f"patient_{k}": v for k, v in traits.items()},
            "patient_rotation_deg": pose["rotation_deg"],
            "patient_tilt_deg": pose["tilt_deg"],
            "patient_field_down": shift[0],
            "patient_field_right": shift[1],
            "rotation_deg": self.pose.rotation_deg,
            "tilt_deg": self.pose.tilt_deg,
            "exposure": self.exposure,
            "field_down": self.field_shift[0],
            "field_right": self.field_shift[1],
        }


def _draw_traits(rng: np.random.Generator) -> Traits:
    u = {name: float(rng.uniform(*bounds)) for name, bounds in TRAIT_RANGES.items() if name != "field_shift"}
    shift = tuple(float(v) for v in rng.uniform(*TRAIT_RANGES["field_shift"], size=2))
    return Traits(
        width=u["width"],
        depth=u["depth"],
        exposure=u["exposure"],
        gamma=float(np.exp(u["log_gamma"])),
        field=u["field"],
        field_shift=shift,
        pose=Pose(u["rotation_deg"], u["tilt_deg"]),
    )


def pseudo_patients(n_patients: int, n_views: int, seed: int) -> list[View]:
    """The pool's views, patient after patient; the same arguments give the same views."""
    if not 1 <= n_views <= MAX_VIEWS:
        raise ValueError(f"views per patient must be 1 to {MAX_VIEWS}, not {n_views}")
    views = []
    for p in range(n_patients):
        rng = np.random.default_rng([seed, p])
        traits = _draw_traits(rng)
        for v in range(n_views):
            steps = VIEW_PATTERN[v]
            jitter = rng.uniform(-1, 1, size=5)
            pose = Pose(
                round(traits.pose.rotation_deg + steps[0] * VIEW_STEP[0] + jitter[0] * VIEW_JITTER["pose_deg"], 3),
                round(traits.pose.tilt_deg + steps[1] * VIEW_STEP[1] + jitter[1] * VIEW_JITTER["pose_deg"], 3),
            )
            exposure = traits.exposure * (1 + jitter[2] * VIEW_JITTER["exposure"])
            shift = tuple(
                float(np.clip(s + j * VIEW_JITTER["field_shift"], -1, 1))
                for s, j in zip(traits.field_shift, jitter[3:], strict=True)
            )
            views.append(View(f"pp{p:03d}", v, traits, pose, exposure, shift))
    return views


def window(mu: np.ndarray) -> tuple[float, float]:
    """The display window of the whole pool: percentiles of the neutral patient's straight view."""
    image = 1.0 - np.exp(-WATER_MU_PER_MM * path_length(mu, Pose(0, 0), POOL_VOXEL_MM))
    lo, hi = np.percentile(image, WINDOW_PERCENTILES)
    return float(lo), float(hi)


def _stretch_width(image: np.ndarray, factor: float) -> np.ndarray:
    """The projection stretched left-right about its centre (air beyond the body's new edges)."""
    from scipy import ndimage

    rows, cols = image.shape
    centre = (cols - 1) / 2.0
    source_cols = (np.arange(cols) - centre) / factor + centre
    grid = np.meshgrid(np.arange(rows, dtype=np.float64), source_cols, indexing="ij")
    return ndimage.map_coordinates(image, grid, order=1, cval=0.0)


def render_view(mu: np.ndarray, view: View, display: tuple[float, float], size: int) -> np.ndarray:
    """One view as uint16 (size × size), mu on the POOL_VOXEL_MM grid."""
    from PIL import Image

    traits = view.traits
    length = _stretch_width(path_length(mu, view.pose, POOL_VOXEL_MM), traits.width) * traits.depth
    image = 1.0 - np.exp(-WATER_MU_PER_MM * view.exposure * length)
    lo, hi = display
    image = np.clip((image - lo) / (hi - lo), 0.0, 1.0) ** traits.gamma
    margin = int(round(image.shape[0] * TILT_MARGIN))
    image = image[margin : image.shape[0] - margin]
    rows, cols = image.shape
    keep_rows, keep_cols = int(round(rows * traits.field)), int(round(cols * traits.field))
    top = int(round((rows - keep_rows) / 2 * (1 + view.field_shift[0])))
    left = int(round((cols - keep_cols) / 2 * (1 + view.field_shift[1])))
    image = image[top : top + keep_rows, left : left + keep_cols]
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(resized) * 65535.0), 0, 65535).astype(np.uint16)


def cache_key(view: View, size: int, ct_sha256: str) -> str:
    """What the pixels of a view depend on, hashed: the CT, the grid, the size, the view and this module's version."""
    import hashlib

    record = {"ct": ct_sha256, "voxel_mm": POOL_VOXEL_MM, "size": size, "version": RENDER_VERSION, **view.record()}
    record.pop("image_path")
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


# the worker processes' copy of the volume and window (set once per process by the pool's initializer)
_WORKER: dict = {}


def _init_worker(mu: np.ndarray, display: tuple[float, float], size: int) -> None:
    _WORKER.update(mu=mu, display=display, size=size)


def _render_job(view: View) -> np.ndarray:
    return render_view(_WORKER["mu"], view, _WORKER["display"], _WORKER["size"])


def render_views(ct_path: Path, views: list[View], size: int, workers: int):
    """Yield (view, uint16 pixels) for `views`, in order, rendered in `workers` processes (1: in this one)."""
    mu = load_attenuation(ct_path, POOL_VOXEL_MM)
    display = window(mu)
    if workers <= 1 or len(views) < 2:
        for view in views:
            yield view, render_view(mu, view, display, size)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(mu, display, size)) as pool:
        yield from zip(views, pool.map(_render_job, views, chunksize=4), strict=True)


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def cached_copy(cache: Path | None, key: str, target: Path) -> bool:
    """Copy a cached render to `target`; False when there is none."""
    if cache is None or not (cache / f"{key}.png").is_file():
        return False
    shutil.copyfile(cache / f"{key}.png", target)
    return True


def pool_rows(views: list[View], prompts: list[tuple[str, dict[str, int]]]) -> list[dict]:
    """The prompts table's rows: one invented findings prompt per view, the pseudo-patient as patient_id."""
    from .prompts import label_row, prompt_id

    return [
        {
            "split": "pool",
            "prompt_id": prompt_id(text),
            "prompt": text,
            "patient_id": view.patient_id,
            "study_id": f"{view.patient_id}-s{view.index}",
            "id": None,
            "image_path": view.name,
            "view": "AP",
            **label_row(labels),
        }
        for view, (text, labels) in zip(views, prompts, strict=True)
    ]


def write_views(ct_path: Path, views: list[View], size: int, real_dir: Path, cache: Path | None, workers: int):
    """Every view's 16-bit PNG in real_dir, from the cache where it has one (rendering only the others, and adding
    them to it); returns (rendered, from cache) counts."""
    from chexbench_common.hashing import sha256_file
    from chexbench_common.imageio import save_grey_png
    from chexbench_common.progress import track

    ct_sha = sha256_file(ct_path)
    keys = {view.name: cache_key(view, size, ct_sha) for view in views}
    missing = [view for view in views if not cached_copy(cache, keys[view.name], real_dir / view.name)]
    for view, pixels in track(
        render_views(ct_path, missing, size, workers), total=len(missing), desc="render pool", unit="img"
    ):
        save_grey_png(pixels, real_dir / view.name)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            save_grey_png(pixels, cache / f"{keys[view.name]}.png")
    return len(missing), len(views) - len(missing)
