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
# STAGES, GPU_STAGES, SHARDED_STAGES: generated from tools/*/stage.yml (python images/render.py write)
include mk/stages.mk
# every tools/<tool>/ and a backend package inside one (tools/llava-report/legacy: LLAVA_ENV=legacy's commands)
PACKAGES   := $(sort shared_schema $(patsubst %/,%,$(dir $(wildcard tools/*/pyproject.toml tools/*/*/pyproject.toml))))
STAMP      := $(VENV)/.setup-done
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export CHEXBENCH_CACHE_DIR ?= $(CACHE_DIR)
# compose writes Results/ as the caller
export CHEXBENCH_UID ?= $(shell id -u)
export CHEXBENCH_GID ?= $(shell id -g)
COMPOSE_FILES ?= compose/compose.yaml

# --- runners: $(call stage_cmd,<stage>) expands to the prefix that runs chexbench-<stage> ---------------------
gpu_flag = $(if $(filter $(1),$(GPU_STAGES)),--nv,)
# ALIGN_ENV=himl: the align stage runs hi-ml-multimodal's own BioViL-T: from .venv-himl (make setup-himl) under
# RUNNER=local, from the align-himl image (compose service, SIF) under docker and apptainer
ALIGN_ENV ?= native
himl = $(and $(filter align,$(1)),$(filter himl,$(ALIGN_ENV)))
# LLAVA_ENV=legacy: llava-report's finetune and generate are LLaVA-Rad's own code (tools/llava-report/README.md,
# "Legacy environment"): under RUNNER=local from your clone (LLAVA_RAD_ROOT, LLAVA_PYTHON in the environment), under
# docker and apptainer from the llava-report-legacy image you build from it (make image-llava-legacy)
LLAVA_ENV ?= native
legacy = $(and $(filter llava-report,$(1)),$(filter legacy,$(LLAVA_ENV)))
stage_image = $(if $(call himl,$(1)),align-himl,$(if $(call legacy,$(1)),llava-report-legacy,$(1)))
ifeq ($(RUNNER),local)
stage_cmd = $(if $(call himl,$(1)),CHEXBENCH_ALIGN_ENGINE=himl $(HIML_BIN)/chexbench-align,$(if \
  $(call legacy,$(1)),CHEXBENCH_VARIANT=legacy )$(BIN)/chexbench-$(1))
else ifeq ($(RUNNER),docker)
stage_cmd = docker compose $(addprefix -f ,$(COMPOSE_FILES) $(if $(call legacy,$(1)),compose/compose.legacy.yaml)) \
  --profile $(call stage_image,$(1)) run --rm $(call stage_image,$(1)) chexbench-$(1)
else ifeq ($(RUNNER),apptainer)
stage_cmd = apptainer exec $(call gpu_flag,$(1)) --cleanenv --no-home --pwd /work \
  --bind $(CURDIR)/$(RESULTS):/work/$(RESULTS) --bind $(CURDIR)/assets:/work/assets:ro \
  --bind $(CURDIR)/MIMIC_Splits:/work/MIMIC_Splits:ro $(if $(wildcard $(MIMIC_ROOT)),--bind $(MIMIC_ROOT):/data/mimic:ro) \
  --bind $(CACHE_DIR):/cache --env CHEXBENCH_CACHE_DIR=/cache,HF_HUB_OFFLINE=$(HF_HUB_OFFLINE) \
  $(SIF_DIR)/chexbench-$(call stage_image,$(1))_$(IMAGE_TAG).sif chexbench-$(1)
else
$(error RUNNER must be local, docker or apptainer, not '$(RUNNER)')
endif

.PHONY: help setup test test-system lint splits bench weights collect clean $(STAGES)

help: ## list targets and variables
	@echo "chexbench make targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "  <stage>        run one stage: $(STAGES) (declared in tools/<stage>/stage.yml)"
	@echo "                 e.g. make embed CMD=run ARGS=\"--extractor raddino ...\" (CMD defaults to run)"
	@echo
	@echo "variables: MODEL=$(MODEL) RUN_ID=$(RUN_ID) RUNNER=$(RUNNER) (local|docker|apptainer)"
	@echo "           RESULTS=$(RESULTS) SPLIT=$(SPLIT) SPLIT_CSV=$(SPLIT_CSV) MIMIC_ROOT=$(MIMIC_ROOT)"
	@echo "           VENV=$(VENV) CACHE_DIR=$(CACHE_DIR) SIF_DIR=$(SIF_DIR) IMAGE_TAG=$(IMAGE_TAG)"
	@echo "outputs go to $(RESULTS)/<MODEL>/<RUN_ID>/<stage>/ with manifest.json and _SUCCESS"

setup: $(STAMP) ## create .venv and install everything (offline from the package registries)

$(STAMP): requirements/dev.txt requirements/assets.txt $(wildcard */pyproject.toml tools/*/pyproject.toml tools/*/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/assets.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
	  $(foreach p,$(PACKAGES),-e ./$(p))
	touch $@

lint: setup ## ruff over the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the system tests (pytest -m system: SIGKILL and resume, two-process DDP, runs repeated for identical output, the GPU
# script's check; ~4 min) run in make test-system, which CI runs after make test, so make test stays under 10 min
test: setup lint report-browser ## lint, then the test suite but its system tests (offline; installs chromium for the report's browser test)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not system"

test-system: setup ## the system tests: SIGKILL and resume, two-process DDP, repeated runs, the GPU script's check (CI)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m system

splits: setup ## convert a LLaVA-Rad annotation CSV to a prompts table (SPLIT_CSV=..., SPLIT=...)
	$(BIN)/chexbench-splits convert --input $(SPLIT_CSV) --split $(SPLIT) --out MIMIC_Splits/prompts_$(SPLIT).parquet

$(STAGES): $(if $(filter local,$(RUNNER)),setup)
	$(call stage_cmd,$@) $(CMD) $(ARGS)

# --- make bench ------------------------------------------------------------------------------------------------
# MODEL=demo (the default): the embedded default, CPU only, no downloads. Any other MODEL: a registry model from
# assets/models.yml, real prompts from `make splits` and real images under MIMIC_ROOT.
DEVICE      ?= auto
PROMPTS     ?= MIMIC_Splits/prompts_$(SPLIT).parquet
BOOTSTRAP   ?= 100
BENCH_ARGS_GENERATE ?=
# extra options of the classify and llava-report runs (e.g. BENCH_ARGS_CLASSIFY="--devices 4 --strategy ddp")
BENCH_ARGS_CLASSIFY ?=
BENCH_ARGS_LLAVA_REPORT ?=
# SHARD=auto: the generate and embed runs take their shard from a Slurm array (compose/hpc/submit.sh STAGES=all)
SHARD ?=
SHARD_ARGS = $(if $(SHARD),--shard $(SHARD))
BENCH       := $(BIN)/chexbench-bench
GEN_DIR     := $(RUN_DIR)/generate
# inside containers the MIMIC root is mounted at /data/mimic; paths under the repository are the same everywhere
REAL_ROOT   := $(if $(filter local,$(RUNNER)),$(MIMIC_ROOT),/data/mimic)

ifeq ($(MODEL),demo)
BENCH_PROMPTS   := $(RUN_DIR)/inputs/prompts.parquet
BENCH_REAL_ROOT := $(RUN_DIR)/inputs/real
bench-inputs: setup
	$(BENCH) demo-inputs --results $(RESULTS) --run-id $(RUN_ID)
	test -f $(RUN_DIR)/models/tiny-sana/model_index.json || \
	  $(call stage_cmd,generate) tiny-pipeline sana $(RUN_DIR)/models/tiny-sana
	test -f $(RUN_DIR)/models/tiny-raddino/config.json || \
	  $(call stage_cmd,embed) tiny-raddino $(RUN_DIR)/models/tiny-raddino
	test -f $(RUN_DIR)/models/tiny-dinov2/config.json || \
	  $(call stage_cmd,embed) tiny-raddino $(RUN_DIR)/models/tiny-dinov2 --seed 1
	test -f $(RUN_DIR)/models/tiny-clip/config.json || \
	  $(call stage_cmd,embed) tiny-clip $(RUN_DIR)/models/tiny-clip
	test -f $(RUN_DIR)/models/tiny-reid.pth || \
	  $(call stage_cmd,privacy) tiny-reid $(RUN_DIR)/models/tiny-reid.pth
	test -f $(RUN_DIR)/models/tiny-biovil/tiny.json || \
	  $(call stage_cmd,align) tiny-biovil $(RUN_DIR)/models/tiny-biovil
	test -f $(RUN_DIR)/models/tiny-llava-rad/llava-rad/config.json || \
	  $(call stage_cmd,llava-convert) tiny-llava-rad $(RUN_DIR)/models/tiny-llava-rad
	test -f $(RUN_DIR)/models/tiny-chexbert/chexbert.pth || \
	  $(call stage_cmd,llava-report) tiny-chexbert $(RUN_DIR)/models/tiny-chexbert
GENERATOR_ARGS = --generator sana --model $(MODEL) --model-path $(RUN_DIR)/models/tiny-sana --height 64 --width 64 \
  --steps 2 --batch-size 8
RADDINO_PATH = $(RUN_DIR)/models/tiny-raddino
# stand-ins for DINOv2 ViT-L/14 (FD_DINOv2) and CLIP ViT-L/14-336 (CMMD): tiny random models, numbers meaningless
DINOV2_PATH = $(RUN_DIR)/models/tiny-dinov2
CLIP_PATH = $(RUN_DIR)/models/tiny-clip
INCEPTION_WEIGHTS =
REID_WEIGHTS = $(RUN_DIR)/models/tiny-reid.pth
BIOVIL_DIR = $(RUN_DIR)/models/tiny-biovil
BIOVIL_TEXT = $(BIOVIL_DIR)/text
PRIVACY_TRAIN   = $(RUN_DIR)/inputs/prompts_train.parquet
PRIVACY_HOLDOUT = $(RUN_DIR)/inputs/prompts_holdout.parquet
PRIVACY_N = 6
PRIVACY_CONTROLS = 6
# the control copies at the real images' 256 px: at the tiny generator's 64 px even an exact copy, blown up to the
# Inception's 299 px input, lands nearer another demo radiograph than its own source
PRIVACY_SIZE = 256
# classify on the demo: its TRAIN/holdout images, a tiny ResNet (width 4) for one epoch per setting, one seed
CLASSIFY_TRAIN = $(PRIVACY_TRAIN)
CLASSIFY_TEST = $(PRIVACY_HOLDOUT)
CLASSIFY_ARGS = --size 64 --width 4 --epochs 1 --seeds 1 --batch-size 8 --workers 0 --val-fraction 0.2
# llava-report on the demo: a tiny random LLaVA-Rad in its own layout, converted, fine-tuned on 50 and 100 % of the
# TRAIN prompts' generations with two training seeds (each scored, and their mean with a CI over reports and seeds),
# scored with a tiny random CheXbert (RadGraph: its own environment, rows say skipped)
LLAVA_RAD = $(RUN_DIR)/models/tiny-llava-rad/llava-rad
VICUNA    = $(RUN_DIR)/models/tiny-llava-rad/vicuna
LLAVA_DIR = $(RUN_DIR)/models/tiny-llava-rad-hf
LLAVA_CONVERT_ARGS = --dtype float32
LLAVA_ARGS = --fraction 50 --fraction 100 --seeds 2 --epochs 20 --lr 5e-3 --batch-size 4 --workers 0 \
  --max-new-tokens 32 --bootstrap $(BOOTSTRAP) --chexbert $(RUN_DIR)/models/tiny-chexbert/chexbert.pth \
  --chexbert-tokenizer $(RUN_DIR)/models/tiny-chexbert/bert-tiny-uncased
else
BENCH_PROMPTS   := $(PROMPTS)
BENCH_REAL_ROOT := $(REAL_ROOT)
bench-inputs: setup
	$(BENCH) assets plan $(MODEL)
	$(BENCH) assets check $(MODEL)
	$(BENCH) assets check raddino
	$(foreach e,$(REGISTRY_EXTRACTORS),$(BENCH) assets path --optional $(e) > /dev/null &&) true
	@test -f $(PROMPTS) || { echo "make: $(PROMPTS) is missing: convert the split first (make splits, see MIMIC_Splits/README.md)" >&2; exit 3; }
	@test -d $(MIMIC_ROOT) || { echo "make: MIMIC_ROOT=$(MIMIC_ROOT) is not a folder: point it at your MIMIC-CXR-JPG 2.0.0 copy" >&2; exit 3; }
GENERATOR_ARGS = --generator $(MODEL) --model $(MODEL) $$($(BENCH) assets generate-args $(MODEL))
RADDINO_PATH = $$($(BENCH) assets path raddino)
# DINOv2 ViT-L/14 (FD_DINOv2, KD_DINOv2) and CLIP ViT-L/14-336 (CMMD): the registry's dinov2 and clip when present
# (make weights fetches them), or your own folders (DINOV2_PATH=..., CLIP_PATH=...; empty: left out); bench-inputs
# says in one line per missing one which metrics the run then does not compute
DINOV2_PATH ?= $$($(BENCH) assets path --optional dinov2 2>/dev/null)
CLIP_PATH ?= $$($(BENCH) assets path --optional clip 2>/dev/null)
REGISTRY_EXTRACTORS = $(if $(filter file,$(origin DINOV2_PATH)),dinov2) $(if $(filter file,$(origin CLIP_PATH)),clip)
REID_WEIGHTS = $$($(BENCH) assets path reid)
BIOVIL_DIR = $$($(BENCH) assets path biovil-t)
BIOVIL_TEXT = $(BIOVIL_DIR)
PRIVACY_TRAIN   ?= MIMIC_Splits/prompts_train.parquet
PRIVACY_HOLDOUT ?= $(PROMPTS)
PRIVACY_N ?= 2000
PRIVACY_CONTROLS ?= 200
PRIVACY_SIZE ?= 512
# classify on MIMIC: the 20K training prompts (chexbench-splits) and the TEST split, ResNet-50 from ImageNet weights
CLASSIFY_TRAIN ?= MIMIC_Splits/prompts_train20k.parquet
CLASSIFY_TEST ?= $(PROMPTS)
CLASSIFY_ARGS ?= --backbone-weights $$($(BENCH) assets path resnet50-imagenet)
# llava-report on MIMIC: your converted LLaVA-Rad (LLAVA_DIR; or LLAVA_RAD + VICUNA, your own copies, converted here
# once) and CheXbert: the registry's chexbert and bert-base-uncased when `assets check` passes (make weights fetches
# them), else the rows say skipped (or LLAVA_ARGS="--chexbert ... --chexbert-tokenizer ..."); nothing is downloaded
LLAVA_RAD ?=
VICUNA    ?=
LLAVA_DIR ?= assets/checkpoints/llava-rad-hf
LLAVA_CONVERT_ARGS ?=
CHEXBERT_ARGS = $$(c=$$($(BENCH) assets path chexbert 2>/dev/null) && t=$$($(BENCH) assets path bert-base-uncased \
  2>/dev/null) && echo "--chexbert $$c --chexbert-tokenizer $$t")
LLAVA_ARGS ?= $(CHEXBERT_ARGS)
# the FID Inception state_dict when `chexbench-bench assets check inception-fid` passes (pool3 + logits: IS), else
# the packaged TorchScript (pool3 only: IS unavailable)
INCEPTION_WEIGHTS = $$(p=$$($(BENCH) assets path inception-fid 2>/dev/null) && echo "=$$p")
endif

# Radiomics features (FRD): pyradiomics is in the development environment; the stage images do not have it yet (its
# only release that builds on Python >= 3.10 is an sdist that needs a compiler stage in images/Dockerfile).
RADIOMICS_EXTRACTOR ?= $(if $(filter local,$(RUNNER)),--extractor radiomics,)

bench-generate: bench-inputs
	$(call stage_cmd,generate) run $(GENERATOR_ARGS) --prompts $(BENCH_PROMPTS) --results $(RESULTS) \
	  --run-id $(RUN_ID) --device $(DEVICE) $(BENCH_ARGS_GENERATE) $(SHARD_ARGS)

# evaluated by the shell: a registry path is only known once `assets path` has run (empty: the extractor is left out)
EXTRA_EXTRACTORS = $$(p="$(DINOV2_PATH)"; test -z "$$p" || echo "--extractor dinov2=$$p") \
  $$(p="$(CLIP_PATH)"; test -z "$$p" || echo "--extractor clip=$$p")

bench-embed: bench-generate
	$(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --images $(GEN_DIR)/images.parquet --images-root $(GEN_DIR)/images \
	  --prompts $(BENCH_PROMPTS) --real-root $(BENCH_REAL_ROOT) \
	  --extractor inception$(INCEPTION_WEIGHTS) --extractor raddino=$(RADDINO_PATH) $(EXTRA_EXTRACTORS) \
	  $(RADIOMICS_EXTRACTOR) --device $(DEVICE) $(SHARD_ARGS)

# Fidelity, with the privacy chain's embeddings (below) in the spaces it embeds: its TRAIN pool for the C_T
# data-copying test and its 10 generations per prompt for the per-prompt Vendi score.
PRIVACY_TABLES = $(foreach e,inception raddino,--train $(PRIVACY_DIR)/embed/real-$(e).parquet \
  --prompt-samples $(PRIVACY_DIR)/embed/synthetic-$(e).parquet)
bench-fidelity: bench-embed bench-privacy-embed
	$(call stage_cmd,fidelity) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --prompts $(BENCH_PROMPTS) --images $(GEN_DIR)/images.parquet --conditional --bootstrap $(BOOTSTRAP) \
	  $(PRIVACY_TABLES) --prompt-samples-images $(PRIVACY_DIR)/generate/images.parquet \
	  --extra-info "$(MODEL) $(RUN_ID)"

# Alignment: BioViL-T image-text cosine of each generation and its prompt, the shuffled floor and the real ceiling.
bench-align: bench-generate
	$(call stage_cmd,align) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --prompts $(BENCH_PROMPTS) --images $(GEN_DIR)/images.parquet --images-root $(GEN_DIR)/images \
	  --real-root $(BENCH_REAL_ROOT) --image-weights $(BIOVIL_DIR)/biovil_t_image_model_proj_size_128.pt \
	  --text-model $(BIOVIL_TEXT) --bootstrap $(BOOTSTRAP) --device $(DEVICE)

# Utility: the TRAIN prompts' generations (run <RUN_ID>.classify), shared by classify and llava-report.
CLASSIFY_RUN := $(RUN_ID).classify
TRAIN_GEN    := $(RESULTS)/$(MODEL)/$(CLASSIFY_RUN)/generate
bench-train-images: bench-inputs
	$(call stage_cmd,generate) run $(GENERATOR_ARGS) --prompts $(CLASSIFY_TRAIN) --results $(RESULTS) \
	  --run-id $(CLASSIFY_RUN) --device $(DEVICE) $(BENCH_ARGS_GENERATE) $(SHARD_ARGS)

# Classification: train every setting on real, synthetic and both, test on the real TEST images.
bench-classify: bench-train-images
	$(call stage_cmd,classify) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --train-prompts $(CLASSIFY_TRAIN) --test-prompts $(CLASSIFY_TEST) --real-root $(BENCH_REAL_ROOT) \
	  --images $(TRAIN_GEN)/images.parquet --images-root $(TRAIN_GEN)/images --bootstrap $(BOOTSTRAP) $(CLASSIFY_ARGS) \
	  $(BENCH_ARGS_CLASSIFY)

# Report generation: LLaVA-Rad (converted by the llava-convert tool) fine-tuned on the TRAIN prompts' generations per
# fraction, findings for the real TEST images (and zero-shot), scored. The conversion (or the check that LLAVA_DIR
# holds one) is its own step: a Slurm job with several tasks runs only the fine-tuning on every rank.
bench-llava-convert: bench-inputs
	$(if $(LLAVA_RAD),$(call stage_cmd,llava-convert) convert --llava-rad $(LLAVA_RAD) --vicuna $(VICUNA) \
	  --out $(LLAVA_DIR) $(LLAVA_CONVERT_ARGS),@test -f $(LLAVA_DIR)/config.json || { echo "make: $(LLAVA_DIR) is not a \
	  converted LLaVA-Rad: pass LLAVA_RAD=<your checkpoint folder> VICUNA=<your Vicuna-7B v1.5> (or LLAVA_DIR)" >&2; exit 5; })

bench-llava-report: bench-llava-convert bench-train-images
	$(call stage_cmd,llava-report) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --model-dir $(LLAVA_DIR) --train-prompts $(CLASSIFY_TRAIN) --images $(TRAIN_GEN)/images.parquet \
	  --images-root $(TRAIN_GEN)/images --test-prompts $(CLASSIFY_TEST) --real-root $(BENCH_REAL_ROOT) \
	  --device $(DEVICE) $(LLAVA_ARGS) $(BENCH_ARGS_LLAVA_REPORT)

# Privacy: sample TRAIN prompts -> 10 generations each (run <RUN_ID>.privacy) -> embed them with the TRAIN pool ->
# embed the positive-control ladder (run <RUN_ID>.privacy-control) -> the audit, in <RUN_DIR>/privacy, in every space
# of PRIVACY_SPACES (the FID Inception's real weights and RAD-DINO; the first is the protocol's latent distance). The
# holdout's embeddings are the main run's real set (the TEST split; in the demo, every third image).
PRIVACY_RUN    := $(RUN_ID).privacy
PRIVACY_DIR    := $(RESULTS)/$(MODEL)/$(PRIVACY_RUN)
SAMPLE_DIR     := $(RUN_DIR)/privacy-sample
PRIVACY_EMBED  := --extractor inception$(INCEPTION_WEIGHTS) --extractor raddino=$(RADDINO_PATH)
PRIVACY_SPACES ?= --extractor raddino --extractor inception
# where a space's weights come from when neither a pinned sha256 nor the network's shape tells (tools/privacy/README.md)
PRIVACY_WEIGHTS ?=
# Each step is its own target (one Slurm job each under compose/hpc/submit.sh STAGES=all).
bench-privacy-sample: bench-inputs
	$(call stage_cmd,privacy) sample --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --prompts $(PRIVACY_TRAIN) --real-root $(BENCH_REAL_ROOT) -n $(PRIVACY_N) --controls $(PRIVACY_CONTROLS) \
	  --size $(PRIVACY_SIZE)
bench-privacy-generate: bench-privacy-sample
	$(call stage_cmd,generate) run $(GENERATOR_ARGS) --prompts $(SAMPLE_DIR)/prompts.parquet --results $(RESULTS) \
	  --run-id $(PRIVACY_RUN) --num-images-per-prompt 10 --device $(DEVICE) $(BENCH_ARGS_GENERATE) $(SHARD_ARGS)
bench-privacy-embed: bench-privacy-generate
	$(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id $(PRIVACY_RUN) \
	  --images $(PRIVACY_DIR)/generate/images.parquet --images-root $(PRIVACY_DIR)/generate/images \
	  --prompts $(PRIVACY_TRAIN) --real-root $(BENCH_REAL_ROOT) $(PRIVACY_EMBED) --device $(DEVICE)
bench-privacy-control: bench-privacy-sample
	$(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id $(PRIVACY_RUN)-control \
	  --images $(SAMPLE_DIR)/control/images.parquet --images-root $(SAMPLE_DIR)/control/images \
	  $(PRIVACY_EMBED) --device $(DEVICE)
bench-privacy: bench-embed bench-privacy-embed bench-privacy-control
	$(call stage_cmd,privacy) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) \
	  --train-prompts $(PRIVACY_TRAIN) --holdout-prompts $(PRIVACY_HOLDOUT) --real-root $(BENCH_REAL_ROOT) \
	  --reid-weights $(REID_WEIGHTS) $(PRIVACY_SPACES) $(PRIVACY_WEIGHTS) --device $(DEVICE)

weights: setup ## fetch every asset `make bench MODEL=...` loads into assets/ (hub: HF_TOKEN for gated models)
	$(BENCH) assets fetch --model $(MODEL)

bench: bench-report ## the whole benchmark for MODEL (default: the embedded demo, CPU only), ending with its report
	$(BENCH) show $(RUN_DIR)/fidelity
	$(BENCH) show $(RUN_DIR)/align
	$(BENCH) show $(RUN_DIR)/classify
	$(BENCH) show $(RUN_DIR)/privacy
	$(BENCH) show $(RUN_DIR)/llava-report
	@echo "report: $(REPORT_HTML)"

.PHONY: bench-inputs bench-generate bench-embed bench-fidelity bench-align bench-privacy bench-train-images \
  bench-classify bench-llava-report bench-privacy-sample bench-privacy-generate bench-privacy-embed \
  bench-privacy-control bench-llava-convert

clean: ## remove the environment and caches (Results/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache $(CACHE_DIR)

include images/images.mk compose/hpc/sif.mk compose/hpc/slurm.mk mk/envs.mk mk/report.mk mk/repeat.mk mk/validate.mk
