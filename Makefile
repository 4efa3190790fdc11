# The two commands a newcomer needs: `make demo` and `make test`. Everything else is here too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH_STAMP := $(VENV)/.torch-stamp
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed-stamp
SDK3_VENV := .venv-sdk3
SDK3_STAMP := $(SDK3_VENV)/.installed-stamp
DEMO_DIR := demo/opt_ml
PYTEST_ARGS ?=

# Unit and functional tests on both cores (pytest-xdist); the tests marked serial (bounds of seconds, several
# processes at once, a fork of the test's own process) after them, one at a time.
XDIST := -n 2 --dist load
# No wheel cache: torch's CUDA wheels alone would keep about 4 GB of CI's disk a second time.
PIP := pip install -q --disable-pip-version-check --no-cache-dir

.PHONY: setup demo test test-fast test-container lint docs format bench images image-cpu image-gpu image-torch image-hopper clean

$(STAMP): requirements/runtime.txt requirements/nodeps.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP) -r requirements/runtime.txt -r requirements/dev.txt
	$(BIN)/$(PIP) --no-deps -r requirements/nodeps.txt
	$(BIN)/$(PIP) --no-deps -e .
	touch $(STAMP)

# The PyTorch engine's tests and type checks need torch (a 2.5 GB download with its CUDA wheels); the demo does not.
$(TORCH_STAMP): $(STAMP) requirements/torch.txt
	$(BIN)/$(PIP) -r requirements/torch.txt
	touch $(TORCH_STAMP)

$(SDK_STAMP): requirements/sdk.txt
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/$(PIP) -r requirements/sdk.txt
	touch $(SDK_STAMP)

$(SDK3_STAMP): requirements/sdk3.txt
	test -x $(SDK3_VENV)/bin/python || $(PYTHON) -m venv $(SDK3_VENV)
	$(SDK3_VENV)/bin/$(PIP) -r requirements/sdk3.txt
	touch $(SDK3_STAMP)

setup: $(STAMP) $(TORCH_STAMP) $(SDK_STAMP) $(SDK3_STAMP)

## demo: make a small built-in data set and run a real CPU training job on it through `train`
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/python -m semseg.example $(DEMO_DIR) --images 32 --size 48 --epochs 8 >/dev/null
	SAGEMAKER_BASE_DIR=$(DEMO_DIR) $(BIN)/train train 2>&1 | tee demo/train.log
	@echo
	@echo "Model artifacts in $(DEMO_DIR)/model:"; ls -l $(DEMO_DIR)/model
	@echo "The exported models (what \`serve\` answers from on CPUs) and the INT8 model's accuracy gate:"
	@grep -oE 'Exported [^ ]*\.onnx.*|INT8 model .*' demo/train.log || echo '  (none: see the warnings in demo/train.log)'
	@echo "Validation mIOU per epoch (all metric lines are in demo/train.log):"
	@grep -o 'epoch: [0-9]*, validation mIOU: [0-9.]*' demo/train.log
	@echo "Pictures of the best epoch and evaluation.json in $(DEMO_DIR)/output/data:"; ls $(DEMO_DIR)/output/data
	@echo "TensorBoard's event files in $(DEMO_DIR)/output/tensorboard; to look at them:"
	@echo "  $(BIN)/tensorboard --logdir $(DEMO_DIR)/output/tensorboard   (then open http://localhost:6006)"

## test: the whole suite: unit, functional (real MXNet and PyTorch on CPU) and container tests (real Docker + SDK)
test: $(TORCH_STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not serial" tests/unit tests/functional $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m serial tests/unit tests/functional $(PYTEST_ARGS)
	$(MAKE) test-container

## test-fast: unit and functional tests without the slow ones (no Docker)
test-fast: $(TORCH_STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow" tests/unit tests/functional $(PYTEST_ARGS)

test-container: $(SDK_STAMP) $(SDK3_STAMP)
	IMAGE=$$(bash docker/build.sh cpu | tail -n 1) && \
	GPU_IMAGE=$$(bash docker/build.sh gpu | tail -n 1) && \
	TORCH_IMAGE=$$(bash docker/build.sh torch | tail -n 1) && \
	SEMSEG_IMAGE=$$IMAGE SEMSEG_GPU_IMAGE=$$GPU_IMAGE SEMSEG_TORCH_IMAGE=$$TORCH_IMAGE SEMSEG_REQUIRE_SDK=1 \
	  SEMSEG_SDK3_PYTHON=$(CURDIR)/$(SDK3_VENV)/bin/python \
	  $(SDK_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/container $(PYTEST_ARGS)

## lint: ruff, ruff format, mypy, and the manual built strictly (a broken link or anchor fails)
lint: $(TORCH_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## docs: the manual (docs/) as a site in build/site
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench` runs every benchmark; `make bench outputs several_hosts` only those (the names after `bench`)
BENCH_NAMES := $(filter-out bench,$(MAKECMDGOALS))
bench: $(TORCH_STAMP)
	$(BIN)/python -m benchmarks $(BENCH_NAMES)
ifeq (bench,$(firstword $(MAKECMDGOALS)))
$(BENCH_NAMES):
	@:
endif

## images: the three images you push, with the ImageNet weights baked in (plain `docker build`: needs Docker Hub and
## a weight source, see docs/images.md): semseg:gpu, semseg:torch and semseg:cpu
images:
	docker build -t semseg:gpu .
	docker build -t semseg:torch --build-arg FLAVOUR=torch --build-arg ENGINE=torch .
	docker build -t semseg:cpu --build-arg FLAVOUR=cpu .

## image-cpu: the offline test set-up (docker/build.sh, no ImageNet weights): Docker engine, local base image and the
## CPU image, on a fresh machine; prints the tag last
image-cpu:
	@bash docker/build.sh cpu

## image-gpu: the same for the GPU image (CUDA libraries from NVIDIA's wheels); prints the tag last
image-gpu:
	@bash docker/build.sh gpu

## image-torch: the torch flavour (V100 to Blackwell): the PyTorch engine, torch 2.10 with its CUDA 12.8 wheels
image-torch:
	@bash docker/build.sh torch

# image-hopper: the torch image's old name, for one release (also tags it semseg:hopper-<revision>)
image-hopper:
	@bash docker/build.sh hopper

clean:
	rm -rf $(VENV) $(SDK_VENV) $(SDK3_VENV) demo build .pytest_cache .mypy_cache .ruff_cache
