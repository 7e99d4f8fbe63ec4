"""Choose the torch device and dtype from a user's request."""

from __future__ import annotations

from .errors import BadInputError, MissingResourceError

DTYPES = ("float32", "float16", "bfloat16")


def select_device(requested: str = "auto"):
    """`auto` picks CUDA when available, else CPU; an explicit `cuda` without a GPU is an error."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise MissingResourceError(
            f"--device {requested} was asked for but no CUDA GPU is visible; "
            "use --device cpu or check CUDA_VISIBLE_DEVICES / --nv"
        )
    try:
        return torch.device(requested)
    except RuntimeError:
        raise BadInputError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N") from None


def torch_dtype(name: str):
    """The torch dtype for one of DTYPES."""
    import torch

    if name not in DTYPES:
        raise BadInputError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return getattr(torch, name)
