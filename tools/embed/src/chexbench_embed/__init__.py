"""chexbench stage `embed`: images (synthetic) or prompts (real) tables to embeddings tables."""

__version__ = "0.1.0"
