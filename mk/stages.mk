# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.
STAGES         := generate embed fidelity privacy
GPU_STAGES     := generate embed privacy
SHARDED_STAGES := generate embed
