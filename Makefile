# The two entry points of the README: `make demo` (set up + the main job) and `make test`.
# Both create .venv on first use; torch is installed first, so pip never pulls a second build.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

# Test collections: ../shared/datasets when it sits beside the repo (offline machines); otherwise
# rerankforge looks in $RERANKFORGE_DATA, then its cache, then downloads from the BEIR mirror.
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)/scifact/corpus.jsonl),)
export RERANKFORGE_DATA ?= $(SHARED_DATA)
endif

.PHONY: setup demo test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/rerankforge demo

test: setup
	$(BIN)/python -m pytest -q
