"""chexbench validate tool: known-answer sets built from a real pool, and the relations every verdict must show."""

__version__ = "0.1.0"
