"""Reading checkpoints from local paths the one safe way (`weights_only`, or safetensors) and checking them against
the layout a model expects, with one line that names what is missing, unexpected or misshapen. torch is imported
only when a checkpoint is read (the rest of chexbench_common does not need it)."""

from __future__ import annotations

from pathlib import Path

from .errors import BadInputError


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
