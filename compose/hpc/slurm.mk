# Slurm targets; included by the top-level Makefile (`include compose/hpc/slurm.mk`). The jobs themselves run
# `make -o setup <stage> CMD=... ARGS=...`, i.e. the same runner prefix as every other make target.
.PHONY: slurm-submit slurm-test

slurm-submit: ## submit generate -> embed -> fidelity to Slurm as afterok-chained jobs (docs/hpc.md; DRY_RUN=1)
	MODEL=$(MODEL) RUN_ID=$(RUN_ID) RESULTS=$(RESULTS) RUNNER=$(RUNNER) compose/hpc/submit.sh $(if $(DRY_RUN),--dry-run)

slurm-test: setup ## start a local Slurm (installs slurm-wlm if missing) and run the chain on tiny models
	bash tests/slurm/run_local_slurm.sh
