"""Reading checkpoints from local paths the one safe way (`weights_only`, or safetensors) and checking them against
the layout a model expects, with one line that names what is missing, unexpected or misshapen; and loading a model
folder (`from_pretrained`) so that a damaged folder is one line naming the file. torch is imported only when a
checkpoint is read (the rest of chexbench_common does not need it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import BadInputError, MissingResourceError

T = TypeVar("T")


def read_state_dict(path: Path, what: str, hint: str) -> dict:
    """A plain state_dict from a .safetensors file or a torch file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{what} {path} does not exist: {hint}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInputError(f"{what} {path} cannot be read as a state_dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise BadInputError(f"{what} {path} holds a {type(state).__name__}, not a state_dict")
    return state


def check_layout(path: Path, state: dict, expected: dict, layout: str, unused: tuple[str, ...] = ()) -> None:
    """Every expected key present with its shape; other keys only under the `unused` prefixes."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(k for k in set(state) - set(expected) if not k.startswith(unused))
    if missing or extra:
        raise BadInputError(
            f"{path} is not {layout}: missing {len(missing)} keys {missing[:3]}, "
            f"unexpected {len(extra)} keys {extra[:3]}"
        )
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise BadInputError(
            f"{path}: {len(wrong)} tensors have the wrong shape for {layout}, first {k}: {tuple(state[k].shape)} "
            f"instead of {tuple(expected[k].shape)}"
        )


def check_safetensors(folder: Path, what: str) -> None:
    """Every .safetensors file under a model folder (or that file) has a complete header and holds all the bytes it
    declares (a truncated copy or download): MissingResourceError naming the file, before a library fails inside."""
    from safetensors import safe_open

    folder = Path(folder)
    files = ([folder] if folder.suffix == ".safetensors" else []) if folder.is_file() else folder.rglob("*.safetensors")
    for path in sorted(files):
        try:
            with safe_open(str(path), framework="numpy"):
                pass
        except Exception as exc:  # safetensors raises its own SafetensorError (header too small, incomplete...)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MissingResourceError(
                f"{what}: {path} is damaged (truncated, or not a safetensors file: {reason}); "
                "copy the model folder again"
            ) from None


def load_pretrained(what: str, folder: Path, load: Callable[[], T]) -> T:
    """Run a `from_pretrained`-style loader on a local model folder: its safetensors files are checked first, and a
    loader's failure becomes one MissingResourceError line naming the folder."""
    check_safetensors(folder, what)
    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingResourceError(f"{what}: cannot load weights from {folder}: {reason}") from None
