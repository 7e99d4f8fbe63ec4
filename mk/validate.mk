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
# the axes `make validate` builds, runs and judges (each a validate-<axis> target)
VALIDATE_AXES      ?= fidelity reports

ifeq ($(MODEL),demo)
# the embedded default's radiographs (the same pool as make bench) and random stand-ins for the learned extractors:
# their relations are computed and shown, marked stand-in
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
	$(BENCH) demo-inputs --results $(RESULTS) --run-id validate
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

.PHONY: validate validate-pool validate-split validate-judge $(addprefix validate-,$(VALIDATE_AXES))

validate: $(addprefix validate-,$(VALIDATE_AXES)) ## known-answer sets through every stage, each relation judged (--strict)
	$(MAKE) --no-print-directory validate-judge

validate-split: validate-pool
	$(VALIDATE) split --pool-prompts $(VAL_POOL) --out $(VAL_SETS) --seed $(VALIDATE_SEED)

# Fidelity: each set imported as a run, embedded against the reference half, scored (no conditional subsets).
validate-fidelity: validate-split
	$(VALIDATE) build fidelity --pool-prompts $(VAL_POOL) --pool-root $(VAL_ROOT) --out $(VAL_SETS) \
	  --seed $(VALIDATE_SEED) $(VALIDATE_FIDELITY_ARGS) > /dev/null
	set -e -o pipefail; $(VALIDATE) sets --plan $(VAL_PLAN) --axis fidelity | \
	while IFS=$$'\t' read -r set run control; do \
	  echo "validate: $$set" >&2; \
	  frd=; case " $(VALIDATE_FRD_CONTROLS) " in *" $$control "*) frd="$(RADIOMICS_EXTRACTOR)";; esac; \
	  $(call stage_cmd,generate) import --csv $(VAL_SETS)/$$set/images.csv \
	    --prompts $(VAL_SETS)/prompts_holdout.parquet --model $(MODEL) --results $(RESULTS) --run-id $$run > /dev/null; \
	  $(call stage_cmd,embed) run --results $(RESULTS) --model $(MODEL) --run-id $$run \
	    --images $(RESULTS)/$(MODEL)/$$run/generate/images.parquet --images-root $(RESULTS)/$(MODEL)/$$run/generate/images \
	    --prompts $(VAL_SETS)/prompts_reference.parquet --real-root $(VAL_ROOT) --num-workers 0 \
	    --extractor inception$(INCEPTION_WEIGHTS) --extractor raddino=$(VAL_RADDINO) $$frd --device $(DEVICE) > /dev/null; \
	  $(call stage_cmd,fidelity) run --results $(RESULTS) --model $(MODEL) --run-id $$run --prompts $(VAL_POOL) \
	    --prdc-extractor inception --prdc-extractor raddino --bootstrap $(VALIDATE_BOOTSTRAP) > /dev/null; \
	done

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
