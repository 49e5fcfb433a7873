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

.PHONY: setup demo test browser infinity
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/rerankforge demo

test: setup browser infinity
	$(BIN)/python -m pytest -q

# The inspect page's browser tests drive a headless Chromium through Playwright: the system's (Debian's
# `chromium`) where there is one, else Playwright's own download, else the system package where this user may
# install it. Without any they skip, saying why (.ci/run makes them fail instead).
browser: setup
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  $(BIN)/python -m playwright install chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "make: no Chromium for the inspect page's browser tests (they will skip): run" \
	       "'$(BIN)/python -m playwright install chromium' or install the system's chromium"

# Infinity (infinity-emb) serving a trained folder, in tests/test_infinity.py: it pins numpy<2 and
# sentence-transformers<4, which rerankforge's environment cannot hold, so it gets a venv of its own (torch
# installed first there too). Without it those tests skip, saying why (.ci/run makes them fail instead).
INFINITY_VENV := .venv-infinity
INFINITY ?= infinity-emb[server,torch]==0.0.78
infinity: $(INFINITY_VENV)/.installed

$(INFINITY_VENV)/.installed:
	@{ $(PYTHON) -m venv $(INFINITY_VENV) && $(INFINITY_VENV)/bin/pip install -q "$(TORCH)" && \
	   $(INFINITY_VENV)/bin/pip install -q "$(INFINITY)" && touch $@; } || \
	  echo "make: could not install $(INFINITY) in $(INFINITY_VENV) (the Infinity tests will skip)"
