"""The one device vocabulary (`auto`, `cpu`, `cuda`, `cuda:N`) and the torch device and dtype chosen from it.

Every `--device` option parses its value with `parse_device` and checks it with `check_available` while the command
line is parsed (`chexbench_common.options.DeviceType`), so a misspelt device or a GPU the machine does not have is
refused before a stage takes its folder. Other spellings (Lightning's accelerators, Hugging Face's device maps) are
derived from the parsed `Device`, never from the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadInputError, MissingResourceError

DTYPES = ("float32", "float16", "bfloat16")
KINDS = ("auto", "cpu", "cuda")
VOCABULARY = "auto, cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Device:
    """A parsed --device value: its kind (auto, cpu, cuda) and, for cuda:N, the GPU index."""

    kind: str
    index: int | None = None


def parse_device(text: str) -> Device:
    """`auto`, `cpu`, `cuda` or `cuda:N`; anything else is a BadInputError naming the vocabulary."""
    kind, sep, index = text.partition(":")
    if kind in KINDS and not sep:
        return Device(kind)
    if kind == "cuda" and index.isdigit():
        return Device(kind, int(index))
    raise BadInputError(f"unknown device {text!r}; use {VOCABULARY}")


def check_available(text: str) -> Device:
    """The parsed device, refused (MissingResourceError) when it names a GPU this machine does not show: `cuda`
    without a CUDA GPU, or `cuda:N` beyond the visible ones. `auto` and `cpu` need no check (and no torch)."""
    device = parse_device(text)
    if device.kind != "cuda":
        return device
    import torch

    if not torch.cuda.is_available():
        raise _no_gpu(text)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise MissingResourceError(
            f"--device {text} was asked for but only {count} CUDA GPU(s) are visible (cuda:0..cuda:{count - 1}); "
            "check CUDA_VISIBLE_DEVICES"
        )
    return device


def select_device(requested: str = "auto"):
    """The torch device: `auto` picks CUDA when available, else CPU; an explicit `cuda` without a GPU is an error."""
    import torch

    device = parse_device(requested)
    if device.kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.kind == "cuda" and not torch.cuda.is_available():
        raise _no_gpu(requested)
    return torch.device(device.kind, device.index)


def _no_gpu(text: str) -> MissingResourceError:
    return MissingResourceError(
        f"--device {text} was asked for but no CUDA GPU is visible; "
        "use --device cpu or check CUDA_VISIBLE_DEVICES / --nv"
    )


def torch_dtype(name: str):
    """The torch dtype for one of DTYPES."""
    import torch

    if name not in DTYPES:
        raise BadInputError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return getattr(torch, name)
