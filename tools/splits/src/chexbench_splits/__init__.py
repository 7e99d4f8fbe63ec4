"""chexbench-splits: LLaVA-Rad annotation CSVs (the CheXGenBench MIMIC splits) -> validated prompts tables."""

__version__ = "0.1.0"
