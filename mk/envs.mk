# Extra environments next to the CPU .venv (docs/DEVELOPING.md, "Environments"). Included by the top-level Makefile,
# whose PYTHON and PACKAGES it uses. Not part of `make test`: .ci/run calls `make test-vision` itself.

# One torch + torchvision pair (the CUDA 13 build, ~5.5 GB) shared by .venv-vision and .venv-himl: installed once into
# .venv-torchvision without pip's cache, and put on each environment's path by a .pth file after that environment's
# own site-packages (so an environment's own pins shadow the layer's). Two copies plus pip's cache (~15 GB) ran a CI
# machine out of disk.
TORCH_LAYER       ?= .venv-torchvision
TORCH_LAYER_STAMP := $(TORCH_LAYER)/.setup-done
SITE_PACKAGES      = $(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
# link-torch-layer VENV: the .pth line that puts the layer's site-packages on VENV's path
link-torch-layer   = echo "$$($(call SITE_PACKAGES,$(abspath $(TORCH_LAYER))))" \
  > "$$($(call SITE_PACKAGES,$(1)))/chexbench-torch-layer.pth"

.PHONY: setup-torch-layer clean-torch-layer

setup-torch-layer: $(TORCH_LAYER_STAMP) ## create .venv-torchvision: torch 2.14.1 + torchvision 0.29.1 (~5.5 GB, once)

$(TORCH_LAYER_STAMP): requirements/torchvision.txt
	test -x $(TORCH_LAYER)/bin/python || $(PYTHON) -m venv $(TORCH_LAYER)
	echo '*' > $(TORCH_LAYER)/.gitignore
	$(TORCH_LAYER)/bin/python -m pip install $(PIP_QUIET) --no-cache-dir -r requirements/torchvision.txt
	touch $@

clean-torch-layer: ## remove .venv-torchvision (then .venv-vision and .venv-himl need it again)
	rm -rf $(TORCH_LAYER)

VISION_VENV   ?= .venv-vision
VISION_BIN    := $(VISION_VENV)/bin
VISION_STAMP  := $(VISION_VENV)/.setup-done
# the test suites that must pass on the vision stack: the shared runtime and contract, and each vision stage
VISION_TESTS  := shared_schema/tests tools/common/tests $(wildcard $(addsuffix /tests,$(addprefix tools/,privacy classify align)))
PIP_QUIET     := --quiet --disable-pip-version-check

.PHONY: setup-vision test-vision clean-vision

setup-vision: $(VISION_STAMP) ## create .venv-vision: dev.txt on the shared torch 2.14.1 + torchvision 0.29.1 layer

$(VISION_STAMP): $(TORCH_LAYER_STAMP) requirements/dev.txt requirements/vision.txt requirements/assets.txt \
  $(wildcard */pyproject.toml tools/*/pyproject.toml)
	test -x $(VISION_BIN)/python || $(PYTHON) -m venv $(VISION_VENV)
	echo '*' > $(VISION_VENV)/.gitignore
	$(call link-torch-layer,$(VISION_VENV))
	sed '/^torch==/d' requirements/dev.txt > $(VISION_VENV)/dev-without-torch.txt
	$(VISION_BIN)/python -m pip install $(PIP_QUIET) -r $(VISION_VENV)/dev-without-torch.txt -r requirements/vision.txt
	$(VISION_BIN)/python -m pip install $(PIP_QUIET) --no-deps -r requirements/assets.txt
	$(VISION_BIN)/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e ./$(p))
	touch $@

test-vision: setup-vision ## the vision-stage tests and a torchvision ResNet-50 forward, in .venv-vision (offline)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VISION_BIN)/python -m pytest -q $(VISION_TESTS)
	$(VISION_BIN)/python -c "import torch, torchvision; \
	  out = torchvision.models.resnet50(weights=None).eval()(torch.rand(1, 3, 64, 64)); \
	  assert out.shape == (1, 1000) and bool(out.isfinite().all()), out.shape; \
	  print('torchvision', torchvision.__version__, 'on torch', torch.__version__, ': resnet50 forward ok')"

clean-vision: ## remove .venv-vision
	rm -rf $(VISION_VENV)

# The isolated original BioViL-T environment: hi-ml-multimodal 0.2.2 on transformers < 5, with our
# chexbench-align on top (--no-deps). `make align ALIGN_ENV=himl` (RUNNER=local) swaps it in; .ci/run proves it
# equal to the native scorer with `make test-align-himl`, and runs the swap as documented with `make test-bench-himl`.
HIML_VENV  ?= .venv-himl
HIML_BIN   := $(HIML_VENV)/bin
HIML_STAMP := $(HIML_VENV)/.setup-done

.PHONY: setup-himl test-align-himl test-bench-himl clean-himl

setup-himl: $(HIML_STAMP) ## create .venv-himl: hi-ml-multimodal 0.2.2 + transformers 4 on the shared torch layer

$(HIML_STAMP): $(TORCH_LAYER_STAMP) requirements/himl.txt shared_schema/pyproject.toml tools/common/pyproject.toml \
  tools/align/pyproject.toml
	test -x $(HIML_BIN)/python || $(PYTHON) -m venv $(HIML_VENV)
	echo '*' > $(HIML_VENV)/.gitignore
	$(call link-torch-layer,$(HIML_VENV))
	$(HIML_BIN)/python -m pip install $(PIP_QUIET) -r requirements/himl.txt
	$(HIML_BIN)/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e ./shared_schema -e ./tools/common \
	  -e ./tools/align
	touch $@

test-align-himl: setup setup-himl ## hi-ml's input = ours per file kind; one random BioViL-T: hi-ml's engine = both CLIs
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(HIML_BIN)/python -m pytest -q tools/align/tests/himl
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python tools/align/tests/himl/check_himl_equivalence.py \
	  $(HIML_BIN) $(BIN)

# The swap as the READMEs write it: the align step of `make bench ALIGN_ENV=himl` on the embedded default (in its own
# results folder), against the native align of the same inputs; the two alignment tables must agree
# (align_compare.py). When HIML_FROM holds a finished native run (CI: make bench-repeat's first run), its inputs,
# generations and tiny BioViL-T are copied and only the himl align runs (`make bench-align ALIGN_ENV=himl`), as the
# container test does with the align-himl image; otherwise both runs are made here. The folder is removed when the
# tables agree and left to look at when they do not.
HIML_BENCH_DIR ?= $(CACHE_DIR)/test-bench-himl
HIML_FROM      ?= $(RESULTS)/_repeat/first
HIML_RUN       := $(MODEL)/$(RUN_ID)

test-bench-himl: setup setup-himl ## make bench ALIGN_ENV=himl's align on the demo; its alignment table = the native run's
	rm -rf $(HIML_BENCH_DIR)
	if test -f $(HIML_FROM)/$(HIML_RUN)/align/_SUCCESS; then \
	  mkdir -p $(HIML_BENCH_DIR)/himl/$(HIML_RUN)/models && \
	  for part in inputs generate models/tiny-biovil; do \
	    cp -a $(HIML_FROM)/$(HIML_RUN)/$$part $(HIML_BENCH_DIR)/himl/$(HIML_RUN)/$$part || exit 1; \
	  done && \
	  $(MAKE) --no-print-directory -o bench-generate bench-align ALIGN_ENV=himl RESULTS=$(HIML_BENCH_DIR)/himl && \
	  native=$(HIML_FROM); \
	else \
	  $(MAKE) --no-print-directory bench ALIGN_ENV=himl RESULTS=$(HIML_BENCH_DIR)/himl && \
	  $(MAKE) --no-print-directory bench-align RESULTS=$(HIML_BENCH_DIR)/native && \
	  native=$(HIML_BENCH_DIR)/native; \
	fi && \
	$(BIN)/python tools/align/tests/himl/align_compare.py $(HIML_BENCH_DIR)/himl/$(HIML_RUN)/align $$native/$(HIML_RUN)/align
	rm -rf $(HIML_BENCH_DIR)

clean-himl: ## remove .venv-himl
	rm -rf $(HIML_VENV)

# The isolated report-scoring environment: radgraph 0.1.18 and f1chexbert 0.0.2 on transformers < 5, with
# our chexbench-llava-report on top (--no-deps), so `.venv-radgraph/bin/chexbench-llava-report score --radgraph-model
# DIR` computes F1-RadGraph with the same CLI. .ci/run runs `make test-radgraph`: a tiny random RadGraph built with
# the package's own classes, scored through the CLI, and the native CheXbert against f1chexbert.
RADGRAPH_VENV  ?= .venv-radgraph
RADGRAPH_BIN   := $(RADGRAPH_VENV)/bin
RADGRAPH_STAMP := $(RADGRAPH_VENV)/.setup-done

.PHONY: setup-radgraph test-radgraph clean-radgraph

setup-radgraph: $(RADGRAPH_STAMP) ## create .venv-radgraph: radgraph 0.1.18 + f1chexbert + transformers 4 (~3 min, 2 GB)

$(RADGRAPH_STAMP): requirements/radgraph.txt shared_schema/pyproject.toml tools/common/pyproject.toml \
  tools/llava-report/pyproject.toml
	test -x $(RADGRAPH_BIN)/python || $(PYTHON) -m venv $(RADGRAPH_VENV)
	echo '*' > $(RADGRAPH_VENV)/.gitignore
	$(RADGRAPH_BIN)/python -m pip install $(PIP_QUIET) -r requirements/radgraph.txt
	$(RADGRAPH_BIN)/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e ./shared_schema \
	  -e ./tools/common -e ./tools/llava-report
	touch $@

test-radgraph: setup-radgraph ## F1-RadGraph on a tiny random model and CheXbert vs f1chexbert, in .venv-radgraph (offline)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(RADGRAPH_BIN)/python -m pytest -q tools/llava-report/tests/test_radgraph_env.py

clean-radgraph: ## remove .venv-radgraph
	rm -rf $(RADGRAPH_VENV)

# The RadEval check (tools/llava-report/README.md, "RadEval"): .venv-radeval sees the main .venv through a .pth file
# (site.addsitedir, so .venv's editable installs come along) and adds requirements/radeval.txt with --no-deps (radeval
# declares torchvision, whose resolution would bring the CUDA torch). Only tests/test_radeval.py runs there: it pins
# why the stage keeps its own scorers.
RADEVAL_VENV  ?= .venv-radeval
RADEVAL_BIN   := $(RADEVAL_VENV)/bin
RADEVAL_STAMP := $(RADEVAL_VENV)/.setup-done

.PHONY: setup-radeval test-radeval clean-radeval

setup-radeval: $(RADEVAL_STAMP) ## create .venv-radeval: radeval 2.2.1 over the main .venv (~1 min, 0.2 GB)

$(RADEVAL_STAMP): $(STAMP) requirements/radeval.txt
	test -x $(RADEVAL_BIN)/python || $(PYTHON) -m venv $(RADEVAL_VENV)
	echo '*' > $(RADEVAL_VENV)/.gitignore
	echo "import site; site.addsitedir('$$($(call SITE_PACKAGES,$(abspath $(VENV))))')" \
	  > "$$($(call SITE_PACKAGES,$(RADEVAL_VENV)))/chexbench-main-venv.pth"
	$(RADEVAL_BIN)/python -m pip install $(PIP_QUIET) --no-deps -r requirements/radeval.txt
	touch $@

test-radeval: setup-radeval ## RadEval 2.2.1 against our report scorers on the OpenI reports, in .venv-radeval (offline)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(RADEVAL_BIN)/python -m pytest -q tools/llava-report/tests/test_radeval.py

clean-radeval: ## remove .venv-radeval
	rm -rf $(RADEVAL_VENV)
