"""Atomic writes for every stage: a temporary file in the target folder, then one rename.

Defined in the data contract (`chexbench_schema.atomic`, which writes its tables this way) and offered here with the
rest of the runtime.
"""

from chexbench_schema.atomic import atomic_path, write_json_atomic, write_text_atomic

__all__ = ["atomic_path", "write_json_atomic", "write_text_atomic"]
