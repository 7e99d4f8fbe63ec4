# Extra environments next to the CPU .venv (docs/DEVELOPING.md, "Environments"). Included by the top-level Makefile,
# whose PYTHON and PACKAGES it uses. Not part of `make test`: .ci/run calls `make test-vision` itself.

VISION_VENV   ?= .venv-vision
VISION_BIN    := $(VISION_VENV)/bin
VISION_STAMP  := $(VISION_VENV)/.setup-done
# the test suites that must pass on the vision stack: the shared runtime and contract, and each vision stage
VISION_TESTS  := shared_schema/tests tools/common/tests $(wildcard $(addsuffix /tests,$(addprefix tools/,privacy classify align)))
PIP_QUIET     := --quiet --disable-pip-version-check

.PHONY: setup-vision test-vision clean-vision

setup-vision: $(VISION_STAMP) ## create .venv-vision: dev.txt with torch 2.14.1 + torchvision 0.29.1 (~1 min, 5.5 GB)

$(VISION_STAMP): requirements/dev.txt requirements/vision.txt requirements/assets.txt \
  $(wildcard */pyproject.toml tools/*/pyproject.toml)
	test -x $(VISION_BIN)/python || $(PYTHON) -m venv $(VISION_VENV)
	echo '*' > $(VISION_VENV)/.gitignore
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
