"""Compressed DICOM as hospitals and archives send it decodes through load_grey (each transfer syntax built here, at
test time, from known pixels, plus real files from the installed pydicom packages), and the files no decoder can read
are one line naming the file, as is an image Pillow refuses as a decompression bomb."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from chexbench_common.errors import ImageDecodeError
from chexbench_common.imageio import load_grey
from chexbench_common.testing import write_decompression_bomb_png, write_dicom, write_undecodable_dicom
from pydicom import uid
from pydicom.data import get_testdata_file


def _pixels() -> np.ndarray:
    """A 12-bit radiograph-like picture: smooth anatomy plus noise, over the whole 12-bit range."""
    y, x = np.mgrid[0:96, 0:80]
    noise = np.random.default_rng(3).integers(0, 90, x.shape)
    return np.clip((np.sin(x / 7) * np.cos(y / 9) + 1) / 2 * 4000 + noise, 0, 4095).astype(np.uint16)


def _gdcm_encode(src: Path, out: Path, syntax: str) -> None:
    """Re-encode a DICOM with GDCM (pydicom has no JPEG-LS or JPEG lossless encoder)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(out))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


def _gdcm_encode_lossy_jpeg(src: Path, out: Path, syntax: str) -> None:
    """JPEG baseline/extended at quality 90 with GDCM's JPEG codec."""
    import gdcm

    codec = gdcm.JPEGCodec()
    codec.SetLossless(False)
    codec.SetQuality(90)
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(syntax)))
    change.SetUserCodec(codec)
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(out))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


def _pydicom_encode(src: Path, out: Path, syntax: str, **kwargs) -> None:
    """Re-encode with pydicom's own encoder plugins (JPEG 2000: pylibjpeg-openjpeg)."""
    ds = pydicom.dcmread(src)
    ds.compress(syntax, **kwargs)
    ds.save_as(out)


LOSSLESS = [
    (uid.JPEGLosslessSV1, _gdcm_encode),  # 1.2.840.10008.1.2.4.70, the JPEG most PACS export
    (uid.JPEGLossless, _gdcm_encode),  # 1.2.840.10008.1.2.4.57
    (uid.JPEGLSLossless, _gdcm_encode),  # decoded by CharLS (pyjpegls): another codec than the encoder's
    (uid.JPEGLSLossless, _pydicom_encode),  # encoded by CharLS
    (uid.JPEG2000Lossless, _pydicom_encode),  # encoded by openjpeg
    (uid.RLELossless, _pydicom_encode),
]


@pytest.mark.parametrize(("syntax", "encode"), LOSSLESS, ids=[f"{s.name} by {e.__name__}" for s, e in LOSSLESS])
def test_lossless_transfer_syntaxes_decode_to_the_uncompressed_image(tmp_path, syntax, encode):
    write_dicom(tmp_path / "plain.dcm", _pixels())
    encode(tmp_path / "plain.dcm", tmp_path / "packed.dcm", syntax)
    assert pydicom.dcmread(tmp_path / "packed.dcm").file_meta.TransferSyntaxUID == syntax
    assert (tmp_path / "packed.dcm").stat().st_size < (tmp_path / "plain.dcm").stat().st_size
    np.testing.assert_array_equal(load_grey(tmp_path / "packed.dcm"), load_grey(tmp_path / "plain.dcm"))


def test_lossy_jpeg_2000_decodes_close_to_the_original(tmp_path):
    write_dicom(tmp_path / "plain.dcm", _pixels())
    _pydicom_encode(tmp_path / "plain.dcm", tmp_path / "lossy.dcm", uid.JPEG2000, j2k_cr=[20])
    plain, lossy = load_grey(tmp_path / "plain.dcm"), load_grey(tmp_path / "lossy.dcm")
    assert not np.array_equal(plain, lossy)
    assert np.abs(plain - lossy).mean() < 0.01  # 20:1 on a 12-bit picture: well under 1 % of the range


def test_baseline_jpeg_of_8_bit_data_decodes_close_to_the_original(tmp_path):
    pixels = (_pixels() >> 4).astype(np.uint16)  # 8-bit data, the only depth baseline JPEG holds
    write_dicom(tmp_path / "plain.dcm", pixels)
    ds = pydicom.dcmread(tmp_path / "plain.dcm")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(tmp_path / "plain.dcm")
    _gdcm_encode_lossy_jpeg(tmp_path / "plain.dcm", tmp_path / "jpeg.dcm", uid.JPEGBaseline8Bit)
    plain, jpeg = load_grey(tmp_path / "plain.dcm"), load_grey(tmp_path / "jpeg.dcm")
    assert pydicom.dcmread(tmp_path / "jpeg.dcm").file_meta.TransferSyntaxUID == uid.JPEGBaseline8Bit
    assert not np.array_equal(plain, jpeg) and np.abs(plain - jpeg).mean() < 0.01


def test_12_bit_lossy_jpeg_is_refused_in_one_line_naming_the_syntax(tmp_path):
    """JPEG extended with 12-bit samples: pydicom reads it only through pylibjpeg-libjpeg (GPL-3.0, not installed);
    gdcm's plugin declines it. The file is named with its syntax, not a traceback."""
    write_dicom(tmp_path / "plain.dcm", _pixels())
    _gdcm_encode_lossy_jpeg(tmp_path / "plain.dcm", tmp_path / "jpeg12.dcm", uid.JPEGExtended12Bit)
    with pytest.raises(ImageDecodeError) as info:
        load_grey(tmp_path / "jpeg12.dcm")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'jpeg12.dcm'}: cannot decode the DICOM pixel data, JPEG Extended")
    assert "12-bit" in message and "\n" not in message


def _data_store(name: str) -> Path:
    path = get_testdata_file(name)  # pydicom's own files, then the installed pydicom-data package; never a download
    if path is None:
        pytest.fail(f"{name} is not installed (pydicom-data, MIT): run make setup")
    return Path(path)


def test_real_files_written_by_other_toolkits():
    # the real chest CR of the demo as its archive ships it in JPEG 2000 lossless: the same image as uncompressed
    np.testing.assert_array_equal(load_grey(_data_store("RG1_J2KR.dcm")), load_grey(_data_store("RG1_UNCR.dcm")))
    # JPEG-LS lossless from another encoder: the same MR slice as the uncompressed file
    np.testing.assert_array_equal(
        load_grey(_data_store("MR_small_jpeg_ls_lossless.dcm")), load_grey(_data_store("MR_small.dcm"))
    )
    # JPEG lossless (process 14, SV1) from another encoder (no uncompressed twin ships): a full, non-constant image
    grey = load_grey(_data_store("JPEG-LL.dcm"))
    assert grey.shape == (1024, 256) and grey.std() > 0.05


def test_pixel_data_no_decoder_can_read_is_one_line(tmp_path):
    write_undecodable_dicom(tmp_path / "bad.dcm")
    write_dicom(tmp_path / "mpeg.dcm", (32, 32, b"\x00\x00\x01\xb3" * 8), uid.MPEG2MPML)
    for name, syntax in (("bad.dcm", "JPEG 2000 Image Compression (Lossless Only)"), ("mpeg.dcm", "MPEG2")):
        with pytest.raises(ImageDecodeError) as info:
            load_grey(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: cannot decode the DICOM pixel data, {syntax}")
        assert "\n" not in message


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path):
    write_decompression_bomb_png(tmp_path / "huge.png")
    with pytest.raises(ImageDecodeError) as info:
        load_grey(tmp_path / "huge.png")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'huge.png'}: refused as a possible decompression bomb")
    assert "200000000 pixels" in message and "\n" not in message
