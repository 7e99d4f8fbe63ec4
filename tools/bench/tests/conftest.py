"""The bench tests' helpers (loopback_hub.py) are importable by the test modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
