# The report stage's targets (tools/report). Included by the top-level Makefile, whose STAGES (from the generated
# mk/stages.mk) holds `report`; it uses the Makefile's RESULTS, MODEL, RUN_ID, RUN_DIR, RUNNER and stage_cmd.
#
#   make report RUN=Results/<model>/<run_id>     one run's page: <run>/report/report.html (+ report.json)
#   make report MODEL=demo RUN_ID=default        the same, by name
#   make report RUN=... REPORT_MAP=umap          the embedding map as UMAP instead of PCA
#   make leaderboard                             every finished run under RESULTS: RESULTS/_leaderboard/
#   make bench-report                            the whole benchmark, then its report (make bench ends with it)
#   make report-browser                          Debian's chromium for the browser test (make test needs it)

# RUN=<results>/<model>/<run_id> names one run folder; without it, MODEL and RUN_ID under RESULTS
REPORT_RUN     := $(patsubst %/,%,$(or $(RUN),$(RUN_DIR)))
REPORT_RUN_ID  := $(notdir $(REPORT_RUN))
REPORT_MODEL   := $(notdir $(patsubst %/,%,$(dir $(REPORT_RUN))))
REPORT_RESULTS := $(patsubst %/,%,$(dir $(patsubst %/,%,$(dir $(REPORT_RUN)))))
REPORT_MAP     ?= pca
REPORT_ARGS     = --results $(REPORT_RESULTS) --model $(REPORT_MODEL) --run-id $(REPORT_RUN_ID) --map $(REPORT_MAP)
REPORT_HTML     = $(RUN_DIR)/report/report.html
LEADERBOARD_DIR ?= $(RESULTS)/_leaderboard
CHROMIUM       ?= /usr/bin/chromium

.PHONY: leaderboard bench-report report-browser

# `make report` is the generic stage target (mk/stages.mk lists the stage): CMD defaults to run, and these ARGS
# name the run; ARGS on the command line still replace them (make report CMD=leaderboard ARGS="--results R").
report: ARGS = $(REPORT_ARGS)

leaderboard: $(if $(filter local,$(RUNNER)),setup) ## every finished run under RESULTS in one page and the original's CSVs
	$(call stage_cmd,report) leaderboard --results $(RESULTS) --out $(LEADERBOARD_DIR)

bench-report: bench-fidelity bench-align bench-privacy bench-classify bench-llava-report ## the whole benchmark, then its report (prints the path)
	$(call stage_cmd,report) run --results $(RESULTS) --model $(MODEL) --run-id $(RUN_ID) --map $(REPORT_MAP) > /dev/null
	@echo "report: $(REPORT_HTML)"

report-browser: ## Debian's chromium for the report's browser test (installs it with apt-get when missing; root)
	CHEXBENCH_CHROMIUM=$(CHROMIUM) tools/report/tests/install_chromium.sh
