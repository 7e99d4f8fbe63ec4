"""chexbench-align: image-text alignment of synthetic chest X-rays."""

__version__ = "0.1.0"
