"""The embedded default of `make bench`: real radiographic data from packages, our own prompts."""

__version__ = "0.1.0"
