# chexbench — one entry point for set-up, tests and every stage.
# The stage command line is the same under every RUNNER; only the prefix that runs it changes.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
MODEL      ?= demo
RUN_ID     ?= default
RUNNER     ?= local
RESULTS    ?= Results
RUN_DIR    := $(RESULTS)/$(MODEL)/$(RUN_ID)
SIF_DIR    ?= $(HOME)/.cache/chexbench/sif
IMAGE_TAG  ?= 0.1.0
IMAGE_REPO ?= chexbench
MIMIC_ROOT ?= $(CURDIR)/MIMIC_Splits/raw
CACHE_DIR  ?= $(CURDIR)/.cache
SPLIT      ?= test
CMD        ?= run
SPLIT_CSV  ?= MIMIC_Splits/raw/LLAVARAD_ANNOTATIONS_TEST.csv
STAGES     := generate embed fidelity align privacy classify llava-report
GPU_STAGES := generate embed align privacy classify llava-report
PACKAGES   := $(sort shared_schema $(patsubst %/,%,$(dir $(wildcard tools/*/pyproject.toml))))
STAMP      := $(VENV)/.setup-done
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export CHEXBENCH_CACHE_DIR ?= $(CACHE_DIR)

# --- runners: $(call stage_cmd,<stage>) expands to the prefix that runs chexbench-<stage> ---------------------
gpu_flag = $(if $(filter $(1),$(GPU_STAGES)),--nv,)
ifeq ($(RUNNER),local)
stage_cmd = $(BIN)/chexbench-$(1)
else ifeq ($(RUNNER),docker)
stage_cmd = docker compose -f compose/compose.yaml --profile $(1) run --rm $(1) chexbench-$(1)
else ifeq ($(RUNNER),apptainer)
stage_cmd = apptainer exec $(call gpu_flag,$(1)) --cleanenv --no-home --pwd /work \
  --bind $(CURDIR)/$(RESULTS):/work/$(RESULTS) --bind $(CURDIR)/assets:/work/assets:ro \
  --bind $(CURDIR)/MIMIC_Splits:/work/MIMIC_Splits:ro --bind $(MIMIC_ROOT):/data/mimic:ro \
  --bind $(CACHE_DIR):/cache --env CHEXBENCH_CACHE_DIR=/cache,HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) \
  $(SIF_DIR)/chexbench-$(1)_$(IMAGE_TAG).sif chexbench-$(1)
else
$(error RUNNER must be local, docker or apptainer, not '$(RUNNER)')
endif

.PHONY: help setup test lint splits bench collect clean $(STAGES)

help: ## list targets and variables
	@echo "chexbench make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "  <stage>        run one stage: $(STAGES)"
	@echo "                 e.g. make embed CMD=run ARGS=\"--extractor raddino ...\" (CMD defaults to run)"
	@echo
	@echo "variables: MODEL=$(MODEL) RUN_ID=$(RUN_ID) RUNNER=$(RUNNER) (local|docker|apptainer)"
	@echo "           RESULTS=$(RESULTS) SPLIT=$(SPLIT) SPLIT_CSV=$(SPLIT_CSV) MIMIC_ROOT=$(MIMIC_ROOT)"
	@echo "           VENV=$(VENV) CACHE_DIR=$(CACHE_DIR) SIF_DIR=$(SIF_DIR) IMAGE_TAG=$(IMAGE_TAG)"
	@echo "outputs go to $(RESULTS)/<MODEL>/<RUN_ID>/<stage>/ with manifest.json and _SUCCESS"

setup: $(STAMP) ## create .venv and install everything (offline from the package registries)

$(STAMP): requirements/dev.txt requirements/assets.txt $(wildcard */pyproject.toml tools/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/assets.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
	  $(foreach p,$(PACKAGES),-e ./$(p))
	touch $@

lint: setup ## ruff over the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint ## lint, then the full test suite (offline)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

splits: setup ## convert a LLaVA-Rad annotation CSV to a prompts table (SPLIT_CSV=..., SPLIT=...)
	$(BIN)/chexbench-splits convert --input $(SPLIT_CSV) --split $(SPLIT) --out MIMIC_Splits/prompts_$(SPLIT).parquet

$(STAGES): setup
	@test "$(RUNNER)" != local || test -x $(BIN)/chexbench-$@ || \
	  { echo "make: chexbench-$@ is not installed: the $@ stage is not implemented yet" >&2; exit 3; }
	$(call stage_cmd,$@) $(CMD) $(ARGS)

bench: setup ## the whole benchmark for MODEL (default: the embedded demo)
	@echo "bench for MODEL=$(MODEL) RUNNER=$(RUNNER): stages are added by later issues" && false

clean: ## remove the environment and caches (Results/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache $(CACHE_DIR)
