"""chexbench-llava-legacy: llava-report's `finetune` and `generate` run by the user's own LLaVA-Rad clone (the legacy
environment, CHEXBENCH_VARIANT=legacy); the same command names, stage folders and predictions table as the native
ones. It plugs into `chexbench-llava-report` through an entry point; the stage's package never imports it."""

__version__ = "0.1.0"
