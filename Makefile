# Two commands set everything up on a fresh machine:
#   make demo   - install, then estimate poses on the bundled photo with the shipped weights
#   make test   - install, then run the default test suite (CPU, ~minutes); the install includes the
#                 optional extras (onnxruntime, openvino) so CI runs their backend tests too
#   make lint   - ruff (lint) on src, tests, benchmarks and tools, mypy on the package
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .install.stamp

.PHONY: install demo test test-all lint bench report clean

# The CPU build of torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev,export,openvino]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	stnet predict src/stnet/assets/demo.jpg --detector auto --flip --output-dir runs/demo

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
	rm -rf $(STAMP) build dist src/*.egg-info .pytest_cache
