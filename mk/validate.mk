# make validate: known-answer sets built from a real pool, run through the ordinary stages, and the relations every
# verdict must show on them, judged with their uncertainty (tools/validate/README.md). Included by the top-level
# Makefile, whose MODEL, RESULTS, RUNNER, DEVICE, stage_cmd and the bench variables (PROMPTS, BENCH_REAL_ROOT,
# INCEPTION_WEIGHTS, RADDINO_PATH, RADIOMICS_EXTRACTOR, CHEXBERT_ARGS) it uses.
#
#   make validate                    the embedded default (CPU, no downloads): every axis, then judge --strict
#   make validate MODEL=sana         the same on your MIMIC pool (PROMPTS, MIMIC_ROOT) with the registry's weights
#   make validate-judge              judge again what the sets' runs hold, the report page, then the gate
#                                    (VALIDATE_STRICT= : no gate)
#
# Layout: <RESULTS>/<MODEL>/validate/ holds the pool (inputs/, the demo only), the tiny stand-in models (models/,
# the demo only), the sets (sets/: splits.csv, plan.csv, one folder per set) and the judgement (validate/:
# validation.csv, metrics.parquet, manifest.json). Each set is an ordinary run, <RESULTS>/<MODEL>/validate-<set_id>/.

VALIDATE           := $(BIN)/chexbench-validate
VAL_DIR            := $(RESULTS)/$(MODEL)/validate
VAL_SETS           := $(VAL_DIR)/sets
VAL_PLAN           := $(VAL_SETS)/plan.csv
VAL_MODELS         := $(VAL_DIR)/models
VALIDATE_SEED      ?= 0
VALIDATE_BOOTSTRAP ?= 200
VALIDATE_STRICT    ?= --strict
# utility: training seeds per planted-signal set; the relations read classify's mean over seeds, whose two-level CI
# holds the seed-to-seed variation (an untaught classifier's response to the square has a random sign per seed)
VALIDATE_UTILITY_SEEDS ?= 10
# patient-disjoint parts of the pool: the reference / train pool, the holdout (fidelity's sets, privacy's calibration,
# the classifiers' test set) and images no stage has seen (privacy's unseen images)
VALIDATE_SPLITS    ?= --split reference=0.5 --split holdout=0.25 --split unseen=0.25
# fidelity sets run at a time, and the intra-op threads of each one's stage processes (RUNNER=local)
VALIDATE_CPUS      := $(shell nproc 2> /dev/null || echo 1)
VALIDATE_JOBS      ?= $(VALIDATE_CPUS)
VALIDATE_SET_THREADS ?= $(shell echo $$(( $(VALIDATE_CPUS) / $(VALIDATE_JOBS) > 0 ? $(VALIDATE_CPUS) / $(VALIDATE_JOBS) : 1 )))
VALIDATE_SET_ENV   ?= $(if $(filter local,$(RUNNER)),OMP_NUM_THREADS=$(VALIDATE_SET_THREADS))
# the axes `make validate` builds, runs and judges (each a validate-<axis> target); make starts them in this order,
# so the long ones come first (utility's trainings, then fidelity's union embed runs)
VALIDATE_AXES      ?= utility fidelity privacy alignment reports

ifeq ($(MODEL),demo)
# the embedded default's pool: 56 pseudo-patients rendered from the demo CT (chexbench-bench validation-pool), and
# random stand-ins for the learned extractors: their relations are computed and shown, marked stand-in
VAL_POOL           := $(VAL_DIR)/inputs/prompts.parquet
VAL_ROOT           := $(VAL_DIR)/inputs/real
VAL_RADDINO        := $(VAL_MODELS)/tiny-raddino
VAL_CHEXBERT_ARGS  := --chexbert $(VAL_MODELS)/tiny-chexbert/chexbert.pth \
  --chexbert-tokenizer $(VAL_MODELS)/tiny-chexbert/bert-tiny-uncased
VALIDATE_FIDELITY_ARGS ?= -n 20
# radiomics costs ~1 s per image and core: on the embedded default FRD is judged on these ladders (and level 0)
VALIDATE_FRD_CONTROLS  ?= original blur noise
VALIDATE_REPORTS_ARGS  ?= -n 200
VALIDATE_JUDGE_ARGS    ?=
validate-pool: setup
	$(BENCH) validation-pool --results $(RESULTS) --run-id validate
	test -f $(VAL_RADDINO)/config.json || $(call stage_cmd,embed) tiny-raddino $(VAL_RADDINO)
	test -f $(VAL_MODELS)/tiny-chexbert/chexbert.pth || \
	  $(call stage_cmd,llava-report) tiny-chexbert $(VAL_MODELS)/tiny-chexbert
else
VAL_POOL           := $(PROMPTS)
VAL_ROOT           := $(BENCH_REAL_ROOT)
VAL_RADDINO        := $(RADDINO_PATH)
VAL_CHEXBERT_ARGS  := $(CHEXBERT_ARGS)
VALIDATE_FIDELITY_ARGS ?= -n 500
VALIDATE_FRD_CONTROLS  ?= original blur noise jpeg gamma resample collapse
VALIDATE_REPORTS_ARGS  ?= -n 1000 --source pool
VALIDATE_JUDGE_ARGS    ?= --registry assets/models.yml
validate-pool: setup
	$(BENCH) assets check raddino
	@test -f $(PROMPTS) || { echo "make: $(PROMPTS) is missing: convert the split first (make splits)" >&2; exit 3; }
endif

.PHONY: validate validate-run validate-pool validate-split validate-judge $(addprefix validate-,$(VALIDATE_AXES))

# -j for a sub-make that runs sets side by side: VALIDATE_JOBS, unless it runs under a make that already shares job
# slots (make validate runs the axes side by side, and their sets share those VALIDATE_JOBS slots)
VAL_J = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(VALIDATE_JOBS))

# -o setup: this make has made setup already, or holds it back (a Slurm job: compute nodes never install anything),
# and make passes no -o to a sub-make
validate: setup ## known-answer sets through every stage, each relation judged (--strict)
	$(MAKE) --no-print-directory -o setup $(VAL_J) validate-run

# the axes of VALIDATE_AXES (side by side under make -j), then the judge (the Slurm chain's last step)
validate-run: $(addprefix validate-,$(VALIDATE_AXES))
	$(MAKE) --no-print-directory -o setup validate-judge

validate-split: validate-pool
	$(VALIDATE) split --pool-prompts $(VAL_POOL) --out $(VAL_SETS) --seed $(VALIDATE_SEED) $(VALIDATE_SPLITS)

# Every set of an axis through its validate-<axis>-set/<set_id> target, VALIDATE_JOBS at a time (a sub-make): a set
# is small, so most of its time is one thread starting Python and loading models, and the sets overlap well; each
# stage process then gets VALIDATE_SET_THREADS intra-op threads (RUNNER=local), so the sets do not spin on each
# other's cores. make -n: the plan does not exist before the build has run, so a dry run shows one placeholder set.
VAL_DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
# The axis's sets are listed once (<sets>/sets-<axis>.tsv: set_id, run_id, control), not by one process per set.
val_each_set = $(if $(VAL_DRY_RUN),$(MAKE) --no-print-directory validate-$(1)-set/SET,set -e -o pipefail; \
  $(VALIDATE) sets --plan $(VAL_PLAN) --axis $(1) > $(VAL_SETS)/sets-$(1).tsv; \
  $(MAKE) --no-print-directory $(VAL_J) $$(cut -f1 $(VAL_SETS)/sets-$(1).tsv | sed 's|^|validate-$(1)-set/|'))
# in a set's recipe: its run id and control in $$run and $$control
val_set_vars = echo "validate: $*" >&2; \
  read -r run control < <(awk -F'\t' -v s=$* '$$1 == s {print $$2, $$3}' $(VAL_SETS)/sets-$(1).tsv); \
  test -n "$$run" || { echo "make: no $(1) set $* in $(VAL_SETS)/sets-$(1).tsv (make validate-$(1) lists them)" >&2; exit 3; }

# Fidelity: every set's images embedded by one embed run against the reference half (the union, validate-fidelity-all;
# radiomics, ~1 s per image and core, only on the FRD controls' sets: validate-fidelity-frd), each set's rows sliced
# into its own tables (chexbench-validate slice, once, after both), then each set scored by its own fidelity run (no
# conditional subsets).
VAL_FID_ALL := validate-fidelity-all
VAL_FID_FRD := $(if $(and $(strip $(VALIDATE_FRD_CONTROLS)),$(strip $(RADIOMICS_EXTRACTOR))),validate-fidelity-frd)
validate-fidelity: validate-split
	$(VALIDATE) build fidelity --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) $(VALIDATE_FIDELITY_ARGS) > /dev/null
	$(VALIDATE) union --plan $(VAL_PLAN) --axis fidelity --out $(VAL_SETS)/$(VAL_FID_ALL:validate-%=%) > /dev/null
	$(if $(VAL_FID_FRD),$(VALIDATE) union --plan $(VAL_PLAN) --axis fidelity --out $(VAL_SETS)/$(VAL_FID_FRD:validate-%=%) \
	  $(addprefix --control ,$(VALIDATE_FRD_CONTROLS)) > /dev/null)
	$(MAKE) --no-print-directory $(VAL_J) $(addprefix validate-fidelity-union/,$(VAL_FID_ALL) $(VAL_FID_FRD))
	$(VALIDATE) slice $(foreach r,$(VAL_FID_ALL) $(VAL_FID_FRD),--union $(VAL_SETS)/$(r:validate-%=%)/images.csv \
	  --run $(RESULTS)/$(MODEL)/$(r)) --out $(VAL_SETS) > /dev/null
	+$(call val_each_set,fidelity)

# one union: imported (files relative to the sets' folder) and embedded; `slice` then gives each set its tables
validate-fidelity-union/%:
	$(call stage_cmd,generate) import --csv $(VAL_SETS)/$(*:validate-%=%)/images.csv --images-dir $(VAL_SETS) \
	  --prompts $(VAL_SETS)/prompts_holdout.parquet --model $(MODEL) --results $(RESULTS) --run-id $* > /dev/null
	$(VALIDATE_SET_ENV) $(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id $* \
	  --images $(RESULTS)/$(MODEL)/$*/generate/images.parquet --images-root $(RESULTS)/$(MODEL)/$*/generate/images \
	  --prompts $(VAL_SETS)/prompts_reference.parquet --real-root $(VAL_ROOT) \
	  $(if $(filter $(VAL_FID_FRD),$*),$(RADIOMICS_EXTRACTOR) --num-workers $(VALIDATE_CPUS),\
	  --extractor inception$(INCEPTION_WEIGHTS) --extractor raddino=$(VAL_RADDINO) --num-workers 0) \
	  --device $(DEVICE) > /dev/null

validate-fidelity-set/%:
	set -e -o pipefail; $(call val_set_vars,fidelity); \
	tables=$(VAL_SETS)/$*/embed; \
	$(VALIDATE_SET_ENV) $(call stage_cmd,fidelity) run --results $(RESULTS) --model $(MODEL) --run-id $$run \
	  $$(for t in $$tables/real-*.parquet; do printf ' --real %s' $$t; done) \
	  $$(for t in $$tables/synthetic-*.parquet; do printf ' --synth %s' $$t; done) --images $$tables/images.parquet \
	  --prompts $(VAL_POOL) --prdc-extractor inception --prdc-extractor raddino --bootstrap $(VALIDATE_BOOTSTRAP) > /dev/null

# Report scorers: the four controls' predictions scored side by side in one run (validate-reports).
validate-reports: validate-split
	$(VALIDATE) build reports --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) $(VALIDATE_REPORTS_ARGS) > /dev/null
	$(call stage_cmd,llava-report) score --results $(RESULTS) --model $(MODEL) --run-id validate-reports \
	  $$($(VALIDATE) sets --plan $(VAL_PLAN) --axis reports | \
	    awk -F'\t' '{printf " --predictions %s=$(VAL_SETS)/%s/predictions.parquet", $$1, $$1}') \
	  $(VAL_CHEXBERT_ARGS) --bootstrap $(VALIDATE_BOOTSTRAP) --device $(DEVICE) > /dev/null

# judge, the report page (its validation panel), then the gate: --strict on the same, already written table
validate-judge: $(if $(filter local,$(RUNNER)),setup)
	$(VALIDATE) judge --results $(RESULTS) --model $(MODEL) --plan $(VAL_PLAN) $(VALIDATE_JUDGE_ARGS)
	$(call stage_cmd,report) run --results $(RESULTS) --model $(MODEL) --run-id validate > /dev/null
	@echo "report: $(VAL_DIR)/report/report.html"
	$(VALIDATE) judge --results $(RESULTS) --model $(MODEL) --plan $(VAL_PLAN) --quiet $(VALIDATE_STRICT) \
	  $(VALIDATE_JUDGE_ARGS) > /dev/null

# --- privacy, utility, alignment ----------------------------------------------------------------------------------
ifeq ($(MODEL),demo)
VAL_REID            := $(VAL_MODELS)/tiny-reid.pth
VAL_BIOVIL          := $(VAL_MODELS)/tiny-biovil
VAL_BIOVIL_TEXT     := $(VAL_BIOVIL)/text
VALIDATE_PRIVACY_N      ?= 32
VALIDATE_UTILITY_ARGS   ?= --max-side 32 --marker 0.3
# 13 of the 14 labels carry no signal here, so the checkpoint is the last epoch's, not one picked by their noise
VALIDATE_CLASSIFY_ARGS  ?= --epochs 12 --size 32 --width 4 --batch-size 8 --lr 3e-3 --patience 12 \
  --synthetic-selection last-epoch --workers 0 --val-fraction 0.2
# RUNNER=local: one intra-op thread; on these tiny tensors a second one only spins (measured on the shared 2-core
# machine: 0.018 s CPU per training step with one thread, 0.65 s with two)
VALIDATE_CLASSIFY_ENV   ?= OMP_NUM_THREADS=1
VALIDATE_ALIGNMENT_ARGS ?= -n 16 --max-side 256
validate-models: validate-pool
	test -f $(VAL_REID) || $(call stage_cmd,privacy) tiny-reid $(VAL_REID)
	test -f $(VAL_BIOVIL)/tiny.json || $(call stage_cmd,align) tiny-biovil $(VAL_BIOVIL)
else
VAL_REID            := $(REID_WEIGHTS)
VAL_BIOVIL          := $(BIOVIL_DIR)
VAL_BIOVIL_TEXT     := $(BIOVIL_TEXT)
VALIDATE_PRIVACY_N      ?= 500
VALIDATE_UTILITY_ARGS   ?= --max-side 256
VALIDATE_CLASSIFY_ARGS  ?= --epochs 10 --size 224 --workers 4
VALIDATE_CLASSIFY_ENV   ?=
VALIDATE_ALIGNMENT_ARGS ?= -n 300
validate-models: validate-pool
	$(BENCH) assets check reid
	$(BENCH) assets check biovil-t
endif
VAL_PRIV_SAMPLE := $(RESULTS)/$(MODEL)/validate-privacy/privacy-sample
VAL_PRIV_ALL    := $(RESULTS)/$(MODEL)/validate-privacy-all
.PHONY: validate-models

# Privacy: the stage's own control copies (privacy sample of the train split, every one of its distinct prompts
# sampled so that each copy's source is a sampled prompt) planted at each share among unseen images; every distinct
# image embedded once (validate-privacy-all, with the training pool; the holdout with the controls in
# validate-privacy), then each set imported and audited by chexbench-privacy run.
validate-privacy: validate-split validate-models
	$(call stage_cmd,privacy) sample --results $(RESULTS) --model $(MODEL) --run-id validate-privacy \
	  --prompts $(VAL_SETS)/prompts_reference.parquet --real-root $(VAL_ROOT) --size 256 --seed $(VALIDATE_SEED) \
	  -n $$($(BIN)/python -c "import pandas as pd, sys; t = pd.read_parquet(sys.argv[1]).drop_duplicates('prompt'); \
	    print(int(t['image_path'].notna().sum()))" $(VAL_SETS)/prompts_reference.parquet) \
	  --controls $(VALIDATE_PRIVACY_N) > /dev/null
	$(VALIDATE) build privacy --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) --sample-dir $(VAL_PRIV_SAMPLE) -n $(VALIDATE_PRIVACY_N) > /dev/null
	$(MAKE) --no-print-directory $(VAL_J) validate-privacy-embed/validate-privacy-all validate-privacy-embed/validate-privacy
	+$(call val_each_set,privacy)

# the two embed runs of every privacy set: the training pool with every distinct synthetic image, the holdout with the
# control copies
validate-privacy-embed/validate-privacy-all:
	$(call stage_cmd,generate) import --csv $(VAL_SETS)/privacy-all/images.csv \
	  --prompts $(VAL_SETS)/prompts_reference.parquet --model $(MODEL) --results $(RESULTS) --run-id validate-privacy-all > /dev/null
	$(VALIDATE_SET_ENV) $(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id validate-privacy-all \
	  --images $(VAL_PRIV_ALL)/generate/images.parquet --images-root $(VAL_PRIV_ALL)/generate/images \
	  --prompts $(VAL_SETS)/prompts_reference.parquet --real-root $(VAL_ROOT) --num-workers 0 \
	  --extractor inception$(INCEPTION_WEIGHTS) --device $(DEVICE) > /dev/null

validate-privacy-embed/validate-privacy:
	$(VALIDATE_SET_ENV) $(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id validate-privacy \
	  --images $(VAL_PRIV_SAMPLE)/control/images.parquet --images-root $(VAL_PRIV_SAMPLE)/control/images \
	  --prompts $(VAL_SETS)/prompts_holdout.parquet --real-root $(VAL_ROOT) --num-workers 0 \
	  --extractor inception$(INCEPTION_WEIGHTS) --device $(DEVICE) > /dev/null

validate-privacy-set/%:
	set -e -o pipefail; $(call val_set_vars,privacy); \
	$(call stage_cmd,generate) import --csv $(VAL_SETS)/$*/images.csv \
	  --prompts $(VAL_SETS)/prompts_reference.parquet --model $(MODEL) --results $(RESULTS) --run-id $$run > /dev/null; \
	$(VALIDATE_SET_ENV) $(call stage_cmd,privacy) run --results $(RESULTS) --model $(MODEL) --run-id $$run \
	  --train-prompts $(VAL_SETS)/prompts_reference.parquet --holdout-prompts $(VAL_SETS)/prompts_holdout.parquet \
	  --real-root $(VAL_ROOT) --reid-weights $(VAL_REID) --extractor inception --sample-dir $(VAL_PRIV_SAMPLE) \
	  --images $(RESULTS)/$(MODEL)/$$run/generate/images.parquet \
	  --synth-embeddings $(VAL_PRIV_ALL)/embed/synthetic-inception.parquet \
	  --train-embeddings $(VAL_PRIV_ALL)/embed/real-inception.parquet \
	  --holdout-embeddings $(RESULTS)/$(MODEL)/validate-privacy/embed/real-inception.parquet \
	  --control-embeddings $(RESULTS)/$(MODEL)/validate-privacy/embed/synthetic-inception.parquet \
	  --workers 0 --bootstrap $(VALIDATE_BOOTSTRAP) --device $(DEVICE) > /dev/null

# Utility: classifiers trained only on the planted-signal twins (all_synthetic), tested on the planted real images.
validate-utility: validate-split
	$(VALIDATE) build utility --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) $(VALIDATE_UTILITY_ARGS) > /dev/null
	+$(call val_each_set,utility)

validate-utility-set/%:
	set -e -o pipefail; $(call val_set_vars,utility); \
	$(call stage_cmd,generate) import --csv $(VAL_SETS)/$*/images.csv \
	  --prompts $(VAL_SETS)/utility-real/prompts_reference.parquet --model $(MODEL) --results $(RESULTS) \
	  --run-id $$run > /dev/null; \
	$(VALIDATE_CLASSIFY_ENV) $(call stage_cmd,classify) run --results $(RESULTS) --model $(MODEL) --run-id $$run \
	  --train-prompts $(VAL_SETS)/utility-real/prompts_reference.parquet \
	  --test-prompts $(VAL_SETS)/utility-real/prompts_holdout.parquet --real-root $(VAL_SETS)/utility-real \
	  --images $(RESULTS)/$(MODEL)/$$run/generate/images.parquet --setting all_synthetic --seeds $(VALIDATE_UTILITY_SEEDS) \
	  --bootstrap $(VALIDATE_BOOTSTRAP) $(VALIDATE_CLASSIFY_ARGS) --device $(DEVICE) > /dev/null

# Alignment: the same real images under matched, other-pathology and shuffled prompts, scored by chexbench-align.
validate-alignment: validate-split validate-models
	$(VALIDATE) build alignment --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) $(VALIDATE_ALIGNMENT_ARGS) > /dev/null
	+$(call val_each_set,alignment)

validate-alignment-set/%:
	set -e -o pipefail; $(call val_set_vars,alignment); \
	$(call stage_cmd,generate) import --csv $(VAL_SETS)/$*/images.csv --prompts $(VAL_POOL) \
	  --model $(MODEL) --results $(RESULTS) --run-id $$run > /dev/null; \
	$(VALIDATE_SET_ENV) $(call stage_cmd,align) run --results $(RESULTS) --model $(MODEL) --run-id $$run --prompts $(VAL_POOL) \
	  --image-weights $(VAL_BIOVIL)/biovil_t_image_model_proj_size_128.pt --text-model $(VAL_BIOVIL_TEXT) \
	  --no-conditional --bootstrap $(VALIDATE_BOOTSTRAP) --seed $(VALIDATE_SEED) --device $(DEVICE) > /dev/null
