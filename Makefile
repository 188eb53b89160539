# Set-up, training and checks. Every target that needs the environment creates it first.
PYTHON ?= python3
VENV ?= .venv
FLOORS_VENV ?= .venv-floors
BIN := $(VENV)/bin
# The CUDA build of torch also runs on CPU; pip takes these versions from the local disk where it can.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Datasets: $LIGHTNING_CNN_DATA if set, else ./data (downloaded there on first use).
export LIGHTNING_CNN_DATA ?= $(abspath data)
CONFIG ?= configs/mnist/lenet5.yaml

.PHONY: install fit test test-fast test-floors test-wheel results lint format docs gpu-check gpu-bundle tensorboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[all,dev,docs]'
	touch $@

fit: install  ## the main job: LeNet-5 on MNIST, then its test accuracy (CONFIG=... for another recipe)
	$(BIN)/python -m lightning_cnn fit --config $(CONFIG)

test: install  ## the whole test suite, slow real-data runs included
	$(BIN)/python -m pytest

test-fast: install  ## everything but the slow real-data runs
	$(BIN)/python -m pytest -m "not slow"

test-floors:  ## the fast suite with every core dependency at its declared floor (constraints/floors.txt), own venv
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c constraints/floors.txt torch torchvision
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c constraints/floors.txt -e '.[all,dev]'
	$(FLOORS_VENV)/bin/python -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|lightning|torchmetrics|jsonargparse|tensorboard|matplotlib) '
	$(FLOORS_VENV)/bin/python -m pytest -m "not slow"

test-wheel:  ## the core wheel in a fresh venv without extras, used from outside the checkout (.ci/wheel)
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" bash .ci/wheel

results: install  ## every figure the docs quote, from scratch, into benchmarks/results/cpu.md (hours; RESULTS_ARGS=--quick)
	$(BIN)/python -m benchmarks.results $(RESULTS_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: install  ## build the documentation site into build/site; a broken link or reference fails the build
	$(BIN)/mkdocs build --strict --site-dir build/site

gpu-check: install  ## on a GPU machine: speed, memory, precision, compile, DDP; writes benchmarks/results/gpu-<device>.{json,md}
	$(BIN)/python -m benchmarks.gpu_check

gpu-bundle:  ## wheels for the offline GPU machine into build/gpu-bundle: ours and benchmarks/gpu_bundle.txt (py3.12)
	rm -rf build/gpu-bundle
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir build/gpu-bundle .
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform any --dest build/gpu-bundle -r benchmarks/gpu_bundle.txt
	ls -1 build/gpu-bundle
	du -sh build/gpu-bundle

tensorboard: install  ## curves of every run under lightning_logs/
	$(BIN)/tensorboard --logdir lightning_logs

clean:  ## caches and build files; keeps lightning_logs/ (your runs), data/ and the venv
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
