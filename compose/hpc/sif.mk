# Apptainer images; included by the top-level Makefile (`include compose/hpc/sif.mk`).
# Build each SIF once, on the login node, from a digest-pinned image; jobs only `apptainer exec` it (docs/hpc.md).
SIF_SOURCE ?=

.PHONY: sif

sif: ## build SIF_DIR/chexbench-<STAGE>_<IMAGE_TAG>.sif once, on the login node (no STAGE: all stages)
	@for s in $(or $(STAGE),$(IMAGE_STAGES)); do \
	  STAGE=$$s SIF_DIR=$(SIF_DIR) IMAGE_TAG=$(IMAGE_TAG) IMAGE_REPO=$(IMAGE_REPO) SIF_SOURCE='$(SIF_SOURCE)' \
	    compose/hpc/build-sif.sh || exit 1; \
	done
