# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.
STAGES         := generate embed fidelity
GPU_STAGES     := generate embed
SHARDED_STAGES := generate embed
