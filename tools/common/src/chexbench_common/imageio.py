"""Load chest X-rays from PNG (8/16-bit, any significant depth), JPEG and DICOM as one grey float image in [0, 1].

Intensity handling (the same for every stage; `bit_depth` is "auto" or one of 8, 10, 12, 14, 16):
- 8-bit grey PNG/JPEG: value / 255. Colour images are reduced to grey with ITU-R 601-2 luma (PIL mode "L"),
  which leaves images whose three channels are equal unchanged.
- 16-bit grey PNG: value / (2**depth - 1), never clipped or shifted to 8 bits. Under "auto" the depth is the PNG
  `sBIT` chunk (significant bits) when present, else 16. With sBIT=n, samples up to 2**n - 1 are raw n-bit values
  (how medical exporters write them); a file with larger samples was scaled up to 16 bits as the PNG standard
  describes, so it is divided by 65535. An explicit depth divides by 2**depth - 1 and refuses (ImageDecodeError
  naming the file and the maximum found) an image with a larger sample or a shallower container: clipping would
  silently flatten the brightest tissue.
- DICOM: the modality LUT (rescale slope/intercept) is applied; if the file defines a VOI LUT or window, it is
  applied and scaled from its output range, which BitsStored defines (or the LUT's own bits); otherwise the image
  is min-max scaled. MONOCHROME1 images are inverted (1 - x) so that bone and tissue are bright, as in MONOCHROME2
  and JPEG exports. The header is authoritative, so `bit_depth` does not apply to DICOM (a table may mix both).
Anything unreadable, truncated or refused raises ImageDecodeError naming the file: this is the one reader every
stage decodes images with, so no decoder's own exception reaches a user. That includes an image Pillow refuses as a
decompression bomb (more than 2 x Image.MAX_IMAGE_PIXELS, about 179 M pixels; a chest X-ray has about 10 M) and
DICOM pixel data no installed decoder can read. Compressed DICOM decodes through pydicom's plugins: python-gdcm
(JPEG lossless, JPEG baseline), pyjpegls (JPEG-LS) and pylibjpeg + pylibjpeg-openjpeg (JPEG 2000, HTJ2K); RLE and
deflate need none. JPEG-LS and JPEG 2000 go to pyjpegls (CharLS) and openjpeg even though gdcm reads them too:
gdcm aborts the whole process (an uncaught C++ exception) on some corrupt streams — a JPEG 2000 frame with a valid
start and a garbled body, a JPEG lossless frame with a damaged header — where openjpeg and CharLS raised an error we
can report on every corrupted frame tried (60 each: bytes flipped, cut short, garbled after the header). JPEG
lossless has no permissive decoder but gdcm, so such a frame can still abort the process. Not read: JPEG extended
with 12-bit samples (1.2.840.10008.1.2.4.51; pydicom reads it only through pylibjpeg-libjpeg, GPL-3.0), refused as
one line naming the syntax.

12-bit data in a 16-bit PNG without sBIT loads near-black under "auto" (max 4095/65535 = 0.06). load_grey cannot
tell, so `load_grey_with_depth` returns each image's DepthInfo and `BitDepthAudit` (in the parent process, since
the decoding may run in DataLoader workers) turns a table's observations into one warning.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .errors import ImageDecodeError

log = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom")
BIT_DEPTHS = ("auto", "8", "10", "12", "14", "16")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOW_RANGE_MAX = 4096  # a 16-bit image whose samples stay below this uses < 1/16 of its range


@dataclass(frozen=True)
class DepthInfo:
    """What one decoded image says about its depth: container bits, declared significant bits, largest sample."""

    container_bits: int
    significant_bits: int | None  # PNG sBIT or DICOM BitsStored; None when the file does not say
    max_value: int

    @property
    def looks_low_range(self) -> bool:
        """A 16-bit image without declared depth whose samples use less than 1/16 of the range (12-bit data?)."""
        return self.container_bits == 16 and self.significant_bits is None and self.max_value < LOW_RANGE_MAX


class BitDepthAudit:
    """Collects the DepthInfo of one table's images and warns once if they look like 12-bit data in 16 bits."""

    def __init__(self, table: str, bit_depth: str | int = "auto"):
        self.table, self.auto = table, parse_bit_depth(bit_depth) is None
        self.seen = self.low = 0
        self.warned = False

    def observe(self, info: DepthInfo) -> None:
        self.seen += 1
        self.low += info.looks_low_range

    def warn(self) -> str | None:
        """Log (once) and return the warning for this table, or None when there is nothing to say."""
        if not self.auto or not self.low or self.warned:
            return None
        self.warned = True
        message = (
            f"{self.table}: {self.low} of {self.seen} 16-bit images have no sBIT chunk and no sample above "
            f"{LOW_RANGE_MAX - 1}, so they load near-black (divided by 65535); if they hold 12-bit data, "
            "rerun with --bit-depth 12"
        )
        log.warning(message)
        return message


def parse_bit_depth(bit_depth: str | int) -> int | None:
    """None for "auto", else the depth as an int; anything outside BIT_DEPTHS is a ValueError."""
    if str(bit_depth) not in BIT_DEPTHS:
        raise ValueError(f"bit depth {bit_depth!r} is not one of {', '.join(BIT_DEPTHS)}")
    return None if bit_depth == "auto" else int(bit_depth)


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def png_significant_bits(path: Path) -> int | None:
    """The grey sBIT of a PNG, or None (no sBIT, colour or not a PNG).

    Pillow (13.0) skips sBIT when reading, so `img.info` never has it: this walks the chunks before IDAT.
    """
    with open(path, "rb") as fh:
        if fh.read(8) != PNG_SIGNATURE:
            return None
        colour_type = None
        while len(head := fh.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            data = fh.read(length)
            fh.seek(4, 1)  # CRC: Pillow checks it when it decodes
            if kind == b"IHDR":
                depth, colour_type = data[8], data[9]
            elif kind == b"sBIT" and colour_type in (0, 4) and data:  # grey, grey + alpha: grey bits first
                if not 0 < data[0] <= depth:
                    raise ImageDecodeError(f"{path}: sBIT of {data[0]} bits in a {depth}-bit PNG is invalid")
                return data[0]
    return None


def _scale(path: Path, arr: np.ndarray, container: int, significant: int | None, depth: int | None):
    """Divide integer samples by the range of the requested or declared depth; see the module docstring."""
    top = int(arr.max()) if arr.size else 0
    info = DepthInfo(container, significant, top)
    if depth is not None:
        if depth > container or top > 2**depth - 1:
            found = f"is {container}-bit" if depth > container else f"has a sample of {top}"
            raise ImageDecodeError(f"{path}: bit depth {depth} was asked for but the file {found}")
    elif significant is not None and top <= 2**significant - 1:
        depth = significant
    else:
        depth = container
    return arr.astype(np.float32) / np.float32(2**depth - 1), info


def _load_pil(path: Path, depth: int | None) -> tuple[np.ndarray, DepthInfo]:
    with Image.open(path) as img:
        img.load()  # forces full decode: a truncated file fails here, not later
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit PNGs often open as 32-bit "I"
            arr = np.asarray(img).astype(np.int64)
            if arr.min() < 0 or arr.max() > 65535:
                raise ImageDecodeError(f"{path}: 32-bit integer image outside the 16-bit range is not supported")
            return _scale(path, arr, 16, png_significant_bits(path), depth)
        if img.mode == "F":
            raise ImageDecodeError(f"{path}: floating-point images are not supported; save as 8- or 16-bit PNG")
        if img.mode != "L":
            return _scale(path, np.asarray(img.convert("L")), 8, None, depth)
        return _scale(path, np.asarray(img), 8, png_significant_bits(path), depth)


def _voi_output_range(ds) -> tuple[float, float]:
    """The range pydicom's apply_voi_lut maps into: a VOI LUT's own bits, else the window's (from BitsStored)."""
    voi = ds.get("VOILUTSequence")
    if voi and "LUTDescriptor" in voi[0] and "LUTData" in voi[0]:  # pydicom prefers the LUT to the window
        return 0.0, float(2 ** int(voi[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0, 2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif int(ds.PixelRepresentation) == 0:
        lo, hi = 0, 2**bits - 1
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return float(lo), float(hi)


def _load_dicom(path: Path) -> tuple[np.ndarray, DepthInfo]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise ImageDecodeError(f"{path}: DICOM file has no pixel data")
    try:
        _prefer_robust_decoder(ds)
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError, ValueError, NotImplementedError... per plugin and syntax
        syntax = ds.file_meta.get("TransferSyntaxUID")
        named = f"{syntax.name} ({syntax})" if syntax else "no transfer syntax"
        raise ImageDecodeError(f"{path}: cannot decode the DICOM pixel data, {named}: {_one_line(exc)}") from None
    if raw.ndim != 2:
        raise ImageDecodeError(f"{path}: DICOM pixel data of shape {raw.shape} is not a single grey frame")
    arr = apply_modality_lut(raw, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        lo, hi = _voi_output_range(ds)
        arr = (apply_voi_lut(arr, ds).astype(np.float64) - lo) / (hi - lo)
    else:
        arr = arr.astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    arr = np.clip(arr, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = 1.0 - arr
    return arr.astype(np.float32), DepthInfo(int(ds.BitsAllocated), int(ds.BitsStored), int(raw.max()))


def _plugin_failure(record: logging.LogRecord) -> bool:
    """False for pydicom's log of one decoder plugin's failure, with its traceback: the same message reaches the
    user once, in the one line naming the file (pydicom raises it with every plugin's reason)."""
    return not (record.levelno == logging.ERROR and record.exc_info)


logging.getLogger("pydicom.pixels.decoders.base").addFilter(_plugin_failure)


def _prefer_robust_decoder(ds) -> None:
    """JPEG 2000 through pylibjpeg-openjpeg, JPEG-LS through pyjpegls, where installed (see the module docstring:
    gdcm can abort the process on a corrupt stream of either)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes

    syntax = ds.file_meta.get("TransferSyntaxUID")
    for syntaxes, plugin in ((JPEG2000TransferSyntaxes, "pylibjpeg"), (JPEGLSTransferSyntaxes, "pyjpegls")):
        if syntax in syntaxes and plugin in get_decoder(syntax).available_plugins:
            ds.pixel_array_options(decoding_plugin=plugin)


def load_grey_with_depth(path: str | Path, bit_depth: str | int = "auto") -> tuple[np.ndarray, DepthInfo]:
    """Decode one image to a float32 (H, W) array in [0, 1] and say what its depth looked like."""
    path = Path(path)
    depth = parse_bit_depth(bit_depth)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file not found")
    try:
        return _load_dicom(path) if is_dicom(path) else _load_pil(path, depth)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"{path}: refused as a possible decompression bomb ({_one_line(exc)}); a chest X-ray has about 10 M "
            "pixels: check the file, or downscale it"
        ) from None
    except Exception as exc:  # whatever a decoder raises on a bad file (OSError, SyntaxError, struct.error...)
        reason = _one_line(exc)
        raise ImageDecodeError(f"{path}: cannot decode image (truncated, corrupt or not an image): {reason}") from None


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (pydicom lists each plugin's failure on a line of its own)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()).replace(":; ", ": ")
    return text or type(exc).__name__


def load_grey(path: str | Path, bit_depth: str | int = "auto") -> np.ndarray:
    """Decode one image to a float32 (H, W) array in [0, 1]; see the module docstring for the intensity rules."""
    return load_grey_with_depth(path, bit_depth)[0]


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """Round a [0, 1] grey image to uint8."""
    return np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Save a PIL image as PNG atomically, so an interrupted write never leaves a truncated file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def save_grey_png(pixels: np.ndarray, path: str | Path, significant_bits: int | None = None) -> Path:
    """Save a uint8 or uint16 grey array as an 8- or 16-bit PNG atomically; with `significant_bits`, declare them in
    an sBIT chunk (Pillow cannot write sBIT), so e.g. 12-bit data loads over its own range under bit depth "auto"."""
    path = Path(path)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"save_grey_png needs uint8 or uint16 pixels, not {pixels.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
        if significant_bits is not None:
            data = tmp.read_bytes()
            at = data.index(b"IDAT") - 4  # the sBIT chunk goes before the first IDAT chunk (its length field)
            body = b"sBIT" + bytes([significant_bits])
            chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
            tmp.write_bytes(data[:at] + chunk + data[at:])
    return path
