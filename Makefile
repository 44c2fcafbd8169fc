# The two commands a user needs: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test pipeline serve ui bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-installs only when the dependency list changes (pip's resolver is slow even when idle).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Materialize everything on the embedded default data, then serve the API and the Dagster UI.
run: $(VENV)/.installed
	$(BIN)/vidrec up

## Run the test suite.
test: $(VENV)/.installed-dev
	$(BIN)/pytest

pipeline: $(VENV)/.installed
	$(BIN)/vidrec pipeline

serve: $(VENV)/.installed
	$(BIN)/vidrec serve

ui: $(VENV)/.installed
	$(BIN)/vidrec ui

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/api_latency.py

clean:
	rm -rf .vidrec dbt_project/target dbt_project/logs
