# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.
STAGES         := generate embed fidelity align privacy classify llava-report report
GPU_STAGES     := generate embed align privacy classify llava-report
SHARDED_STAGES := generate embed
IMAGE_NAMES    := splits generate embed fidelity align align-himl privacy classify llava-convert llava-report report validate
