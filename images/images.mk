# Container images; included by the top-level Makefile (`include images/images.mk`).
# One recipe, images/Dockerfile, builds every stage declared in tools/<stage>/stage.yml; the per-stage build
# arguments (STAGE, GPU, DESCRIPTION) come from stage.yml through images/render.py (see images/README.md).
# every image: one per stage and one per declared variant (IMAGE_NAMES, mk/stages.mk)
IMAGE_STAGES := $(IMAGE_NAMES)
DOCKER       ?= docker
UV_VERSION   ?= 0.13.9
UV_VENV      := $(CACHE_DIR)/tools/uv-$(UV_VERSION)
UV           ?= $(UV_VENV)/bin/uv
GIT_REVISION  = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GIT_SOURCE    = $(shell git remote get-url origin 2>/dev/null)
# the default BASE_IMAGE of images/Dockerfile: pinned by tag and digest, the same as images/images.lock.yml
PINNED_BASE_ARG := ^ARG BASE_IMAGE=[^ ]+:[^ ]+@sha256:[0-9a-f]{64}$$

.PHONY: images image images-check images-lock container-test

images-check: setup ## lint the Dockerfile (hadolint), check the locks and the files generated from stage.yml
	$(BIN)/hadolint images/Dockerfile
	@for s in $(IMAGE_STAGES); do $(BIN)/python images/lock.py $$s --check || exit 1; done
	@grep -q -E '$(PINNED_BASE_ARG)' images/Dockerfile \
	  || { echo "images: images/Dockerfile's ARG BASE_IMAGE default is not pinned by tag and digest" >&2; exit 1; }
	$(BIN)/python images/render.py check

# $(call build_image,<stage>): the docker build of one stage image from the one recipe, with the stage.yml and OCI
# label arguments (eval: the description is shell-quoted by render.py).
build_image = eval DOCKER_BUILDKIT=1 $(DOCKER) build -f images/Dockerfile -t $(IMAGE_REPO)/$(1):$(IMAGE_TAG) \
  "$$($(BIN)/python images/render.py build-args $(1))" \
  --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$(GIT_REVISION) \
  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) --build-arg SOURCE_URL=$(GIT_SOURCE) .

images: $(addprefix image-,$(IMAGE_STAGES)) ## build every stage image as IMAGE_REPO/<stage>:IMAGE_TAG (needs Docker)

image: images-check ## build one stage image: make image STAGE=embed
	$(if $(filter $(STAGE),$(IMAGE_STAGES)),,$(error image: STAGE must be one of $(IMAGE_STAGES), not '$(STAGE)'))
	$(call build_image,$(STAGE))

$(addprefix image-,$(IMAGE_STAGES)): image-%: images-check
	$(call build_image,$*)

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

images-lock: setup $(UV) ## re-lock images/<stage>/requirements.lock from the pyproject files (needs PyPI)
	@for s in $(IMAGE_STAGES); do $(BIN)/python images/lock.py $$s --uv $(UV) || exit 1; done

container-test: setup $(UV) ## build every stage image with podman on a local Debian base, run the whole make bench RUNNER=docker as UID 4242, compare with RUNNER=local (exit 77: skipped)
	UV=$(UV) bash tests/containers/run_podman.sh

# The legacy llava-report image (LLAVA_ENV=legacy), built from YOUR LLaVA-Rad clone (research licence: never pushed
# anywhere by chexbench); its recipe is tools/llava-report/legacy/Dockerfile, outside the generated stage images.
LLAVA_RAD_CLONE ?=
.PHONY: image-llava-legacy
image-llava-legacy: ## build IMAGE_REPO/llava-report-legacy:IMAGE_TAG from your LLaVA-Rad clone (LLAVA_RAD_CLONE=...)
	@test -d "$(LLAVA_RAD_CLONE)/llava" || { echo "make: LLAVA_RAD_CLONE=$(LLAVA_RAD_CLONE) is not a LLaVA-Rad clone \
	  (no llava/ folder): git clone https://github.com/microsoft/LLaVA-Rad and pass its path" >&2; exit 5; }
	DOCKER_BUILDKIT=1 $(DOCKER) build --build-context llava-rad=$(LLAVA_RAD_CLONE) \
	  -f tools/llava-report/legacy/Dockerfile -t $(IMAGE_REPO)/llava-report-legacy:$(IMAGE_TAG) .
