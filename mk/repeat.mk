# The reproducibility check: `make bench` twice with the same seeds, each into its own results root and its own cache
# folder (so the second run recomputes every embedding and real-set statistic instead of reading the first run's),
# then every stage's tables compared for exact equality (chexbench-bench compare-runs). Included by the top-level
# Makefile; it uses RESULTS, MODEL, RUN_ID and BENCH from there.
#
#   make bench-repeat                          REPEAT_DIR=$(RESULTS)/_repeat: first/, second/ and their caches

REPEAT_DIR  ?= $(RESULTS)/_repeat
REPEAT_RUNS := first second

.PHONY: bench-repeat

bench-repeat: $(if $(filter local,$(RUNNER)),setup) ## make bench + leaderboard twice (same seeds, fresh caches); fails unless every table is equal
	rm -rf $(foreach r,$(REPEAT_RUNS),$(REPEAT_DIR)/$(r) $(REPEAT_DIR)/$(r)-cache)
	$(foreach r,$(REPEAT_RUNS),$(MAKE) --no-print-directory bench leaderboard RESULTS=$(REPEAT_DIR)/$(r) \
	  CHEXBENCH_CACHE_DIR=$(abspath $(REPEAT_DIR)/$(r)-cache) CACHE_DIR=$(abspath $(REPEAT_DIR)/$(r)-cache) &&) true
	$(BENCH) compare-runs $(REPEAT_DIR)/first $(REPEAT_DIR)/second --model $(MODEL)
