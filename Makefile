# One command to set up and run the example, one to run the tests. Both create .venv on first use.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
SOURCES = pyproject.toml $(shell find python stan -type f -not -path '*/__pycache__/*')

.PHONY: demo test test-fast docs clean

$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	touch $@

demo: $(VENV)/.installed  ## fit the bundled example data; prints diagnostics and the entity table
	$(VENV)/bin/ratepool fit data/example_counts.csv --window-col window

test: $(VENV)/.installed  ## import contracts (lint-imports), then the whole test suite
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

test-fast: $(VENV)/.installed  ## only the tests that do not sample
	$(PY) -m pytest -m "not slow"

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs  ## the documentation site into site/ (warnings are errors)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) build dist .pytest_cache site
