# podm developer tasks. `make install` then `make test` is the whole set-up.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# The CPU wheel keeps the default install small. GPU users: `make install TORCH_SPEC=` keeps the torch
# already in the venv (e.g. a CUDA build installed first), or set TORCH_SPEC='torch==X.Y.Z' with an
# --index-url of their choice via PIP_EXTRA_INDEX_URL.
TORCH_SPEC ?= torch==2.13.0
SHARED_DATA ?= ../shared/data

.PHONY: install test test-all test-wheel bench data lint clean

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if [ -n "$(TORCH_SPEC)" ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'

test:
	$(BIN)/python -m pytest -q -n 2

test-all:
	$(BIN)/python -m pytest -q -n 2 -m ''

test-wheel:
	$(BIN)/python -m pytest -q tests/test_wheel_install.py -m ''

bench:
	$(BIN)/python scripts/bench.py

data:
	@if [ -d "$(SHARED_DATA)" ]; then $(BIN)/podm data fetch all --source "$(SHARED_DATA)"; \
	else $(BIN)/podm data fetch all; fi

lint:
	$(BIN)/ruff check src tests scripts

clean:
	rm -rf build dist outputs multirun .pytest_cache
