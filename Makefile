# Everything runs from the project's own virtualenv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint unit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

## make demo: run every example DAG against the emulator on an embedded SQLite Airflow.
demo: install
	PATH="$(BIN):$$PATH" $(BIN)/python example_dags/run_demo.py

## make test: lint, type-check and run the whole test suite.
test: lint
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .airflow build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
