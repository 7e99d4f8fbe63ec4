# Container images; included by the top-level Makefile (`include images/images.mk`).
# One image per stage, built from the repository root with images/<stage>/Dockerfile (see images/README.md).
IMAGE_STAGES := $(patsubst images/%/Dockerfile,%,$(wildcard images/*/Dockerfile))
DOCKER       ?= docker
UV_VERSION   ?= 0.13.9
UV_VENV      := $(CACHE_DIR)/tools/uv-$(UV_VERSION)
UV           ?= $(UV_VENV)/bin/uv
GIT_REVISION  = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GIT_SOURCE    = $(shell git remote get-url origin 2>/dev/null)

.PHONY: images image images-check images-lock

images-check: setup ## lint the Dockerfiles (hadolint) and check that every image lock is current
	$(BIN)/hadolint $(foreach s,$(IMAGE_STAGES),images/$(s)/Dockerfile)
	@for s in $(IMAGE_STAGES); do $(BIN)/python images/lock.py $$s --check || exit 1; done
	@grep -L -E '^FROM [^ ]+:[^ ]+@sha256:[0-9a-f]{64}$$' $(foreach s,$(IMAGE_STAGES),images/$(s)/Dockerfile) \
	  | { ! grep . ; } || { echo "images: the FROM lines above are not pinned by tag and digest" >&2; exit 1; }

# $(call build_image,<stage>): the docker build of one stage image, with the OCI label arguments.
build_image = DOCKER_BUILDKIT=1 $(DOCKER) build -f images/$(1)/Dockerfile -t $(IMAGE_REPO)/$(1):$(IMAGE_TAG) \
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
