# colabmodels — the two commands are `make demo` and `make test`; each builds what it needs.
#
#   make demo        start the Drive emulator (and S3/GCS) with demo content and run every notebook
#   make demo NB=04  ... only notebooks/04_*;  make demo OPEN=1: open them all in JupyterLab instead
#   make test        lint, type-check, then every test tier (+ the Colab-pinned environment)
#   make lint        ruff, mypy and the import contracts (lint-imports) only
#   make docs        the documentation site into build/site (runs the notebooks first; warnings are errors)
#   make bench       benchmarks against the emulator (QUICK=1 for small sizes)

PYTHON ?= python3
VENV   := .venv
COLAB  := .venv-colab
PY     := $(VENV)/bin/python
CPY    := $(COLAB)/bin/python
PIP_FLAGS := --disable-pip-version-check --no-input -q
# torch is pinned: an open range may pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: test demo docs lint bench test-colab browser-deps clean help

help:
	@sed -n '1,10p' Makefile

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "colabmodels needs Python 3.10 or newer (PYTHON=$(PYTHON))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing colabmodels[dev] into $(VENV) (first run: a few minutes)"
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) "$(TORCH_PIN)"
	$(PY) -m pip install $(PIP_FLAGS) "$(TORCH_PIN)" -e ".[dev]"
	@touch $@

# What Colab ships today: IPython 7.34 and ipywidgets 7.7.1 (core dependencies only).
$(COLAB)/.installed: pyproject.toml
	@test -x $(CPY) || $(PYTHON) -m venv $(COLAB)
	@echo "installing the Colab-pinned environment into $(COLAB)"
	$(CPY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(CPY) -m pip install $(PIP_FLAGS) -e . "ipython==7.34.0" "ipywidgets==7.7.1" \
		pytest pytest-timeout hypothesis jsonschema
	@touch $@

# Chromium for the browser tier, from Debian's packages (needs root; otherwise install it yourself).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "could not install chromium; the browser tier will say so"; \
	else echo "chromium not found and not root: the browser tier will be skipped (fails under CI=true)"; fi

lint: $(VENV)/.installed
	$(PY) -m ruff check colabmodels tests benchmarks
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-logo

test: $(VENV)/.installed $(COLAB)/.installed browser-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-colab
	$(MAKE) --no-print-directory docs

test-colab: $(COLAB)/.installed
	$(CPY) -m pytest -m colab -p no:cacheprovider tests/unit tests/emulator $(PYTEST_ARGS)

demo: $(VENV)/.installed
	$(PY) -m colabmodels.demo $(if $(OPEN),--open,) $(NB)

# The notebooks are executed into .demo/ first: the site shows them with their outputs.
docs: $(VENV)/.installed
	$(PY) -m colabmodels.demo --workdir .demo
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "documentation: build/site/index.html"

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) $(COLAB) .venv-colab-nb .venv-colab-nb.lock .pytest_cache .mypy_cache .ruff_cache *.egg-info
