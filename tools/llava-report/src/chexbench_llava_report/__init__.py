"""chexbench-llava-report: report generation fine-tuned on synthetic images, tested on real ones."""

__version__ = "0.1.0"
