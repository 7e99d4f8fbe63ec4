# Slurm targets; included by the top-level Makefile (`include compose/hpc/slurm.mk`). The jobs themselves run
# `make -o setup <stage> CMD=... ARGS=...` (STAGES=all|validate: `make -o ... <target>`, one step of make bench or
# make validate), i.e. the same runner prefix as every other make target.
.PHONY: slurm-submit slurm-test

slurm-submit: ## submit to Slurm as afterok-chained jobs: STAGES=all the whole benchmark, STAGES=validate make validate, default generate -> embed -> fidelity (docs/hpc.md; DRY_RUN=1)
	MODEL=$(MODEL) RUN_ID=$(RUN_ID) RESULTS=$(RESULTS) RUNNER=$(RUNNER) compose/hpc/submit.sh $(if $(DRY_RUN),--dry-run)

slurm-test: setup ## start a local Slurm (installs slurm-wlm if missing), run the whole benchmark on the embedded default, the per-stage chain, then make validate's chain (SLURM_TEST_ONLY=validate: that alone)
	bash tests/slurm/run_local_slurm.sh
