"""chexbench fidelity stage: distribution metrics between real and synthetic embeddings."""

__version__ = "0.3.0"
