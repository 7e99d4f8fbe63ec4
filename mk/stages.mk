# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.
STAGES         := embed fidelity generate
GPU_STAGES     := embed generate
SHARDED_STAGES := embed generate
