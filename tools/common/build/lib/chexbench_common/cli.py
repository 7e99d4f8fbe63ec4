"""Click plumbing shared by every stage: expected errors become short messages and distinct exit codes.

The one implementation lives in `chexbench_schema.cli` (so `chexbench-splits` can use it without this package);
stages keep importing it from here.
"""

from __future__ import annotations

from chexbench_schema.cli import StageGroup, configure_logging, stage_group

__all__ = ["StageGroup", "configure_logging", "stage_group"]
