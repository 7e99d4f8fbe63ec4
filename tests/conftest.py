"""The repository-level tests read the stage declarations and renderers of images/ (stages.py, render.py), modules
of those scripts rather than of an installed package: their folder goes on the path, as `python images/render.py`
has it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))
