"""Helpers the stages' tests share (no test framework imported here)."""

from __future__ import annotations

import os
import subprocess


def run_as_srun_tasks(argv: list[str], tasks: int = 2, timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Run `argv` once per task, concurrently, each with the variables `srun --ntasks-per-node=<tasks>` gives the
    tasks of one job on one node (and nothing a launcher would add); returns each task's result, rank order."""
    job = {
        "SLURM_JOB_ID": str(4000 + os.getpid() % 5000),  # the derived rendezvous port differs between test runs
        "SLURM_JOB_NAME": "chexbench-test",
        "SLURM_NTASKS": str(tasks),
        "SLURM_NTASKS_PER_NODE": str(tasks),
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_NODELIST": "localhost",
    }
    processes = [
        subprocess.Popen(
            argv,
            env={**os.environ, **job, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(tasks)
    ]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    return [
        subprocess.CompletedProcess(argv, process.returncode, out, err)
        for process, (out, err) in zip(processes, outputs, strict=True)
    ]


def write_decompression_bomb_png(path) -> None:
    """A valid-looking grey PNG whose header claims 20000 x 10000 pixels (over the ~179 M pixels Pillow refuses to
    decode), with a few bytes of data: refused when opened, before any pixel is allocated."""
    import struct
    import zlib
    from pathlib import Path

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 10000, 8, 0, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def write_dicom(path, pixels, transfer_syntax: str | None = None, photometric: str = "MONOCHROME2") -> None:
    """A single-frame grey CR DICOM of uint16 `pixels` (12 bits stored), uncompressed, or with `transfer_syntax`
    holding `pixels` as the already-encoded frame bytes (then `pixels` is (rows, columns, bytes))."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rows, columns, frame = pixels if transfer_syntax else (*np.shape(pixels), None)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "CR", rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if transfer_syntax:
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = np.asarray(pixels, np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_undecodable_dicom(path) -> None:
    """A DICOM whose header is fine but whose JPEG 2000 pixel data is not a codestream: no decoder can read it."""
    write_dicom(path, (32, 32, b"\xff\x4f\xff\x51 not a codestream " * 4), "1.2.840.10008.1.2.4.90")
