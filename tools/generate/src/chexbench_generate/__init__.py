"""chexbench generate stage: turn a prompts table into synthetic images and an images table."""

__version__ = "0.1.0"
