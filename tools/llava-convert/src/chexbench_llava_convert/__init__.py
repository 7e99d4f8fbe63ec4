"""chexbench-llava-convert: a LLaVA-Rad checkpoint + Vicuna -> a transformers-native LLaVA folder (llava-report's
model), checked against an independent reference forward."""

__version__ = "0.1.0"
