"""chexbench-report: one self-contained page per run, and a leaderboard across runs."""

__version__ = "0.1.0"
