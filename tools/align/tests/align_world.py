"""A small align world: real radiograph stand-ins with prompts and labels, in every form the demo's real set has (a
MONOCHROME1 DICOM with a window, a 16-bit PNG, 8-bit PNGs), generations (one per prompt plus a second for the first
prompt; one in colour, as the demo's generator writes them), a tiny random BioViL-T in the published layouts."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from chexbench_common.imageio import save_grey_png
from chexbench_schema import CHEXPERT_LABELS, write_table
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PROMPTS = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Moderate cardiomegaly with mild edema!",
    "Right lung base opacity, likely atelectasis.",
    "Support devices in place; no pneumothorax",
]


@dataclass
class World:
    root: Path
    prompts: Path
    images: Path
    real_root: Path
    biovil: Path
    results: Path

    def args(self, *extra: str) -> list[str]:
        return [
            "run",
            "--results",
            str(self.results),
            "--model",
            "m",
            "--run-id",
            "r",
            "--prompts",
            str(self.prompts),
            "--images",
            str(self.images),
            "--real-root",
            str(self.real_root),
            "--image-weights",
            str(self.biovil / "biovil_t_image_model_proj_size_128.pt"),
            "--text-model",
            str(self.biovil / "text"),
            "--bootstrap",
            "50",
            "--progress",
            "none",
            *extra,
        ]


def _picture(rng, h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(
        0.5 + 0.3 * np.sin(x / rng.uniform(3, 9)) * np.cos(y / rng.uniform(3, 9)) + 0.05 * rng.standard_normal((h, w)),
        0,
        1,
    )


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME1", window=(2048, 4096)) -> Path:
    """A single-frame CR DICOM: 12 bits stored in 16, a VOI window (what a viewer applies and hi-ml ignores)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _real_image(rng, i: int, folder: Path) -> str:
    """Real image i: a MONOCHROME1 DICOM, a 16-bit PNG, else an 8-bit PNG (each a different size)."""
    picture = _picture(rng, 80 + 4 * i, 64)
    if i == 0:
        return write_dicom(folder / "real_0.dcm", 300 + picture * 3500).name
    if i == 1:  # uneven 16-bit samples: min-max to uint8 from float32 [0, 1] values would miss some levels
        return save_grey_png((picture * 60000 + 1234).astype(np.uint16), folder / "real_1.png").name
    return save_grey_png((picture * 255).astype(np.uint8), folder / f"real_{i}.png").name


def _generation(rng, path: Path, colour: bool) -> Path:
    if not colour:
        return save_grey_png((_picture(rng, 64, 64) * 255).astype(np.uint8), path)
    channels = np.stack([_picture(rng, 64, 64) * s for s in (1.0, 0.8, 0.6)], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((channels * 255).astype(np.uint8), mode="RGB").save(path)
    return path


def make_world(tmp: Path, *, width: int = 8) -> World:
    """The world under tmp; the tiny BioViL-T's ResNet has `width` (8: fast; 64: the full network hi-ml loads)."""
    from chexbench_align.tiny import build_tiny_biovil

    rng = np.random.default_rng(0)
    real_root, gen_root = tmp / "real", tmp / "gen"
    rows, images = [], []
    for i, text in enumerate(PROMPTS):
        pid = f"p{i:016x}"
        real_name = _real_image(rng, i, real_root)
        labels = {label: None for label in CHEXPERT_LABELS}
        labels["Pleural Effusion"] = 1.0 if "effusion" in text else 0.0
        rows.append(
            {
                "split": "test",
                "prompt_id": pid,
                "prompt": text,
                "patient_id": f"pat{i}",
                "study_id": None,
                "id": None,
                "image_path": real_name,
                "view": "PA",
                **labels,
            }
        )
        for k in range(2 if i == 0 else 1):
            name = f"gen_{i}_{k}.png"
            _generation(rng, gen_root / name, colour=i == 1)
            images.append(
                {
                    "image_id": f"{pid}-{k}",
                    "prompt_id": pid,
                    "model": "m",
                    "path": name,
                    "seed": 100 + len(images),
                    "sample_index": k,
                    "width": 64,
                    "height": 64,
                    "steps": 2,
                    "guidance": 4.5,
                    "dtype": "float32",
                    "sha256": hashlib.sha256((gen_root / name).read_bytes()).hexdigest(),
                }
            )
    prompts = write_table(pd.DataFrame(rows), tmp / "prompts.parquet", "prompts", producer="test")
    table = write_table(
        pd.DataFrame(images), tmp / "images.parquet", "images", producer="test", extra={"images_root": "gen"}
    )
    return World(tmp, prompts, table, real_root, build_tiny_biovil(tmp / "biovil", width=width), tmp / "Results")
