"""chexbench-privacy: patient re-identification, memorisation and a calibrated nearest-neighbour audit."""

__version__ = "0.1.0"
