import importlib.util
import logging
from pathlib import Path

import click
import numpy as np
import pydicom
import pytest
from chexbench_common.bitdepth import bit_depth_option
from chexbench_common.errors import ImageDecodeError
from chexbench_common.imageio import (
    BitDepthAudit,
    DepthInfo,
    load_grey,
    load_grey_with_depth,
    png_significant_bits,
    save_grey_png,
    save_png,
    to_uint8,
)
from click.testing import CliRunner
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


def _write_dicom(path, pixels, photometric, window=None, rescale=None):
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
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
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


def test_dicom_window_applies_to_rescaled_values_over_their_stored_bit_range(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    _write_dicom(tmp_path / "r.dcm", pixels, "MONOCHROME2", window=(0, 2000), rescale=(1, -1024))
    grey, info = load_grey_with_depth(tmp_path / "r.dcm")
    # DICOM PS3.3 C.11.2.1.2.1 LINEAR window on the modality values (raw - 1024), output over 12 stored bits
    modality, centre, width = pixels - 1024.0, 0 - 0.5, 2000 - 1
    np.testing.assert_allclose(grey, np.clip((modality - centre) / width + 0.5, 0, 1), atol=1e-6)
    assert info == DepthInfo(16, 12, 4095)
    for depth in ("8", "16"):  # the header is authoritative: a table's --bit-depth is for its PNGs
        np.testing.assert_array_equal(load_grey(tmp_path / "r.dcm", bit_depth=depth), grey)


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


def _save_png16(path, pixels, sbit=None):
    """A 16-bit grey PNG, with an sBIT chunk when asked."""
    return save_grey_png(pixels.astype(np.uint16), path, sbit)


def _picture12():
    """A smooth 12-bit 'X-ray' spanning the whole 12-bit range."""
    y, x = np.mgrid[0:48, 0:64]
    picture = np.sin(x / 9.0) * np.cos(y / 7.0) + np.random.default_rng(1).normal(0, 0.1, x.shape)
    picture = (picture - picture.min()) / (picture.max() - picture.min())
    return np.rint(picture * 4095).astype(np.uint16)


def test_pillow_does_not_expose_sbit_but_our_reader_does(tmp_path):
    path = _save_png16(tmp_path / "s.png", _picture12(), sbit=12)
    with Image.open(path) as img:
        assert "sBIT" not in img.info and "sbit" not in {k.lower() for k in img.info}
    assert png_significant_bits(path) == 12
    assert png_significant_bits(_save_png16(tmp_path / "plain.png", _picture12())) is None


def test_12bit_png_with_sbit_loads_like_its_8bit_version(tmp_path):
    p12 = _picture12()
    p8 = np.rint(p12 / 4095 * 255).astype(np.uint8)  # the same picture exported at 8 bits
    Image.fromarray(p8).save(tmp_path / "p8.png")
    grey12, info = load_grey_with_depth(_save_png16(tmp_path / "p12.png", p12, sbit=12))
    grey8 = load_grey(tmp_path / "p8.png")
    np.testing.assert_allclose(grey12, p12 / 4095.0, rtol=1e-6)
    assert float(np.abs(grey12 - grey8).max()) <= 1 / 255 + 1 / 4095
    assert info == DepthInfo(16, 12, int(p12.max())) and not info.looks_low_range


def test_12bit_png_without_sbit_loads_over_65535_and_the_table_gets_one_warning(tmp_path, caplog):
    p12 = _picture12()
    paths = [_save_png16(tmp_path / f"p{i}.png", p12) for i in range(3)]
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "bright.png")
    audit = BitDepthAudit("real images")
    for path in [*paths, tmp_path / "bright.png"]:
        grey, info = load_grey_with_depth(path)
        audit.observe(info)
    np.testing.assert_allclose(grey, 40000 / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(load_grey(paths[0]), p12 / 65535.0, rtol=1e-6)
    assert float(load_grey(paths[0]).max()) < 0.07  # the near-black load the warning is about
    with caplog.at_level(logging.WARNING, logger="chexbench_common.imageio"):
        message = audit.warn()
        assert audit.warn() is None  # once per table, not per image
    assert [r.getMessage() for r in caplog.records] == [message]
    assert message.startswith("real images: 3 of 4 16-bit images") and "--bit-depth 12" in message


def test_no_warning_for_full_range_sbit_or_explicit_depth(tmp_path):
    p12 = _picture12()
    low = load_grey_with_depth(_save_png16(tmp_path / "a.png", p12))[1]
    declared = load_grey_with_depth(_save_png16(tmp_path / "b.png", p12, sbit=12))[1]
    full = load_grey_with_depth(_save_png16(tmp_path / "c.png", p12.astype(np.uint32) * 16))[1]
    auto, explicit = BitDepthAudit("t"), BitDepthAudit("t", "12")
    for info in (declared, full):
        auto.observe(info)
    explicit.observe(low)
    assert auto.warn() is None and explicit.warn() is None


def test_explicit_bit_depth_12_loads_like_sbit(tmp_path):
    p12 = _picture12()
    plain = _save_png16(tmp_path / "plain.png", p12)
    declared = _save_png16(tmp_path / "declared.png", p12, sbit=12)
    np.testing.assert_array_equal(load_grey(plain, bit_depth=12), load_grey(declared))
    np.testing.assert_array_equal(load_grey(plain, bit_depth="12"), load_grey(declared, bit_depth="auto"))
    np.testing.assert_allclose(load_grey(plain, bit_depth=14), p12 / 16383.0, rtol=1e-6)


def test_sbit_with_samples_scaled_up_to_16_bits_is_read_as_16_bits(tmp_path):
    p12 = _picture12().astype(np.uint32)
    scaled = (p12 << 4) | (p12 >> 8)  # the PNG standard's left-bit-replication of 12-bit samples
    grey = load_grey(_save_png16(tmp_path / "s.png", scaled, sbit=12))
    np.testing.assert_allclose(grey, scaled / 65535.0, rtol=1e-6)
    assert float(np.abs(grey - p12 / 4095.0).max()) <= 1 / 4095


def test_explicit_depth_below_the_data_is_refused_with_one_line(tmp_path):
    p12 = _picture12()
    path = _save_png16(tmp_path / "p.png", p12)
    with pytest.raises(ImageDecodeError) as info:
        load_grey(path, bit_depth=10)
    assert str(info.value) == f"{path}: bit depth 10 was asked for but the file has a sample of {int(p12.max())}"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "eight.png")
    with pytest.raises(ImageDecodeError, match="bit depth 12 was asked for but the file is 8-bit"):
        load_grey(tmp_path / "eight.png", bit_depth=12)
    with pytest.raises(ValueError, match="not one of auto, 8, 10, 12, 14, 16"):
        load_grey(path, bit_depth=11)


def test_invalid_sbit_is_refused(tmp_path):
    path = _save_png16(tmp_path / "p.png", _picture12(), sbit=17)
    with pytest.raises(ImageDecodeError, match="sBIT of 17 bits in a 16-bit PNG is invalid"):
        load_grey(path)


def test_bit_depth_option_passes_a_depth_load_grey_accepts(tmp_path):
    path = _save_png16(tmp_path / "p.png", _picture12())

    @click.command()
    @bit_depth_option()
    def cmd(bit_depth):
        click.echo(f"{bit_depth} {load_grey(path, bit_depth).max():.6f}")

    runner = CliRunner()
    assert runner.invoke(cmd, []).output.split() == ["auto", f"{4095 / 65535:.6f}"]
    assert runner.invoke(cmd, ["--bit-depth", "12"]).output.split() == ["12", f"{1:.6f}"]
    assert runner.invoke(cmd, ["--bit-depth", "11"]).exit_code == 2
    assert "[default: auto]" in runner.invoke(cmd, ["--help"]).output


def test_8bit_png_with_sbit_6_uses_its_six_bits(tmp_path):
    p6 = np.rint(_picture12() / 4095 * 63).astype(np.uint8)
    grey, info = load_grey_with_depth(save_grey_png(p6, tmp_path / "p.png", 6))
    np.testing.assert_allclose(grey, p6 / 63.0, rtol=1e-6)
    assert info == DepthInfo(8, 6, 63)
