"""`python -m chexbench_schema export [FOLDER]` rewrites the JSON Schema files (default shared_schema/schemas)."""

import sys
from pathlib import Path

from .export import export_json_schemas

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "export":
        sys.exit("usage: python -m chexbench_schema export [FOLDER]")
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "schemas"
    for path in export_json_schemas(folder):
        print(path)
