import importlib.util
from pathlib import Path

import numpy as np
import pydicom
import pytest
from chexbench_common.errors import ImageDecodeError
from chexbench_common.imageio import load_grey, save_png, to_uint8
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def test_8bit_png_and_jpeg(tmp_path):
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    Image.fromarray(ramp).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_grey(tmp_path / "a.png"), ramp / np.float32(255))
    flat = np.full((16, 16), 128, np.uint8)
    Image.fromarray(flat).save(tmp_path / "a.jpg", quality=95)
    assert abs(float(load_grey(tmp_path / "a.jpg").mean()) - 128 / 255) < 2 / 255


def test_16bit_png_keeps_full_range(tmp_path):
    values = np.array([[0, 255, 256, 1000], [30000, 40000, 65000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    grey = load_grey(tmp_path / "deep.png")
    np.testing.assert_allclose(grey, values / 65535.0, rtol=1e-6)
    assert len(np.unique(grey)) == values.size  # nothing clipped to 255 or merged


def test_rgb_is_reduced_to_luma_and_grey_rgb_is_unchanged(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_grey(tmp_path / "rgb.png"), grey / np.float32(255))


def _write_dicom(path, pixels, photometric, window=None):
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
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_monochrome1_is_inverted_and_min_max_scaled(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4000]], np.uint16)
    _write_dicom(tmp_path / "m2.dcm", pixels, "MONOCHROME2")
    _write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1")
    m2, m1 = load_grey(tmp_path / "m2.dcm"), load_grey(tmp_path / "m1.dcm")
    np.testing.assert_allclose(m2, pixels / 4000.0, atol=1e-6)
    np.testing.assert_allclose(m1, 1.0 - pixels / 4000.0, atol=1e-6)


def test_dicom_window_is_applied_over_the_stored_bit_range(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    _write_dicom(tmp_path / "w.dcm", pixels, "MONOCHROME2", window=(2048, 4096))
    grey = load_grey(tmp_path / "w.dcm")
    assert grey[0, 0] < grey[0, 1] < grey[1, 0] < grey[1, 1]
    assert grey.min() >= 0.0 and grey.max() <= 1.0


def test_real_chest_cr_dicom_from_pydicom_data():
    spec = importlib.util.find_spec("data_store")
    if spec is None:
        pytest.fail("pydicom-data is not installed: run make setup")
    grey = load_grey(Path(spec.origin).parent / "data" / "RG1_UNCR.dcm")
    h, w = grey.shape
    assert (h, w) == (1955, 1841)
    lung = grey[h // 3 : h // 2, w // 5 : w // 3].mean()
    mediastinum = grey[h // 3 : h // 2, int(w * 0.45) : int(w * 0.55)].mean()
    assert mediastinum > lung + 0.1  # MONOCHROME1 inverted: dense mediastinum bright, lungs dark


def test_truncated_corrupt_and_missing_images_raise_one_line(tmp_path):
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("cut.png", "text.png", "absent.png"):
        with pytest.raises(ImageDecodeError) as info:
            load_grey(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


def test_save_png_is_atomic_and_round_trips(tmp_path):
    grey = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    save_png(Image.fromarray(to_uint8(grey)), tmp_path / "x.png")
    np.testing.assert_allclose(load_grey(tmp_path / "x.png"), grey, atol=0.5 / 255 + 1e-7)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
