# The two commands a user needs: `make run` and `make test` (see README.md); `make test-fast` and
# `make lint` while changing the code.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint pipeline serve ui bench clean

# pytest-xdist workers for `make test` (`make test TEST_WORKERS=0` runs in this one process, as plain
# `.venv/bin/pytest` does). `--dist loadgroup` is tests/conftest.py's scheduling: a test file's tests
# on one worker, and the tests/e2e files sharing one pipeline run on one worker together.
TEST_WORKERS ?= auto
FAST_TIER := not e2e and not trains and not spark

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

## Run the whole test suite, in parallel (pytest-xdist); what CI runs. It ends with the 25 slowest tests.
test: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

## The fast tier, in parallel: everything but the e2e, trains and spark tests (markers: pyproject.toml).
test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -n auto --dist loadgroup -m "$(FAST_TIER)"

## Lint the Python (ruff) and the dbt SQL (sqlfluff); settings in pyproject.toml and dbt_project/.sqlfluff.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint dbt_project

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
