"""chexbench-classify: downstream utility, train on synthetic and test on real."""

__version__ = "0.1.0"
