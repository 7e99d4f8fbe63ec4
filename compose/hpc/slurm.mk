# Slurm targets; included by the top-level Makefile (`include compose/hpc/slurm.mk`). The jobs themselves run
# `make -o setup <stage> CMD=... ARGS=...` (STAGES=all: `make -o ... bench-<step>`, one step of make bench), i.e. the
# same runner prefix as every other make target.
.PHONY: slurm-submit slurm-test

slurm-submit: ## submit to Slurm as afterok-chained jobs: STAGES=all the whole benchmark, default generate -> embed -> fidelity (docs/hpc.md; DRY_RUN=1)
	MODEL=$(MODEL) RUN_ID=$(RUN_ID) RESULTS=$(RESULTS) RUNNER=$(RUNNER) compose/hpc/submit.sh $(if $(DRY_RUN),--dry-run)

slurm-test: setup ## start a local Slurm (installs slurm-wlm if missing), run the whole benchmark on the embedded default, then the per-stage chain
	bash tests/slurm/run_local_slurm.sh
