# Two commands set everything up on a fresh machine:
#   make demo   - install, then estimate poses on the bundled photo with the shipped weights
#   make test   - install, then run the default test suite (CPU, ~minutes)
#   make lint   - ruff (lint) on src, tests, benchmarks and tools, mypy on the package
# Everything installs into a project virtualenv, .venv/, created on first use from $(BASE_PYTHON);
# `make test PYTHON=/path/to/python` uses that interpreter instead (no virtualenv is created).
# The install includes every extra that lint and the default tests import (export, openvino, video),
# so CI runs their backend tests too. Afterwards: `source .venv/bin/activate` (or `.venv/bin/stnet`).
BASE_PYTHON ?= python3
VENV := .venv
ifeq ($(origin PYTHON), undefined)
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.stnet-install.stamp
INTERPRETER := $(PYTHON)
else
STAMP := .install.stamp
INTERPRETER :=
endif
PIP := $(PYTHON) -m pip
EXTRAS := dev,export,openvino,video

.PHONY: install demo test test-all lint bench report clean

$(VENV)/bin/python:
	$(BASE_PYTHON) -m venv $(VENV)

# The CPU build of torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml $(INTERPRETER)
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m stnet predict src/stnet/assets/demo.jpg --detector auto --flip --output-dir runs/demo

test: $(STAMP)
	$(PYTHON) -m pytest -q

test-all: $(STAMP)
	$(PYTHON) -m pytest -q -m "slow or not slow"

# Formatting (ruff format) is configured in pyproject.toml but not checked here yet.
lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks tools
	$(PYTHON) -m mypy src/stnet

report: $(STAMP)
	$(PYTHON) benchmarks/paper_fidelity.py

bench: $(STAMP)
	$(PYTHON) benchmarks/cpu_speed.py

clean:
	rm -rf .install.stamp $(VENV)/.stnet-install.stamp build dist src/*.egg-info .pytest_cache
