# Everything runs from the project's own virtualenv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint unit clean e2e ui-test wheel-test docs

# Quiet unless it fails: pip's and setuptools' output goes to $(VENV)/install.log, shown on failure.
$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@( $(BIN)/python -m pip install -q --upgrade pip \
		&& $(BIN)/python -m pip install -q -e '.[test,lint]' ) > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

## make demo: run every example DAG against the emulator on an embedded SQLite Airflow.
demo: install
	PATH="$(BIN):$$PATH" $(BIN)/python example_dags/run_demo.py

## make test: lint, type-check and run the whole test suite.
test: lint
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs

## make faults: print the fault matrix (every fault x call x API x sync/async) with counts;
## the same cells run in `make test` (tests/reliability/test_fault_matrix.py).
.PHONY: faults
faults: install
	$(BIN)/python -m tests.reliability.fault_matrix

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .venv-airflow-* .compat-logs .venv-wheel .airflow .e2e build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache docs/_build

## make docs: the docs site (Sphinx, the Markdown pages of docs/ through myst-parser, the API
## reference from the docstrings) into docs/_build/html; any warning fails the build.
DOCS_STAMP := $(VENV)/.docs-stamp

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs built: docs/_build/html/index.html"

## make e2e: a real Airflow 3 deployment from .venv (API server, scheduler with LocalExecutor,
## DAG processor, triggerer; SQLite) runs the example DAGs and a triggerer restart through the
## REST API, against the emulator (tests/e2e/run_e2e.py).
e2e: install
	PATH="$(BIN):$$PATH" $(BIN)/python -m tests.e2e.run_e2e

## make ui-test: the connection forms in a real browser, Debian's chromium driven by Playwright
## (no browser download), against a real Airflow 3 API server: sign in, add a useapi and a
## writetext connection, check fields, choices and placeholders, save, press Test
## (tests/ui/run_ui.py). Installs chromium with apt when it is missing. Screenshots: .e2e/ui-*/.
CHROMIUM ?= /usr/bin/chromium
UI_STAMP := $(VENV)/.ui-stamp

$(UI_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ui]'
	touch $(UI_STAMP)

$(CHROMIUM):
	$$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $$([ "$$(id -u)" = 0 ] || echo sudo -E) \
		apt-get install -y -q chromium

ui-test: $(UI_STAMP) $(CHROMIUM)
	PATH="$(BIN):$$PATH" UI_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m tests.ui.run_ui

## make test-compat: the test suite (unit tiers and the `airflow dags test` DAG tests) on the newest
## patch release of every Airflow minor the provider supports, each in its own venv
## .venv-airflow-<minor> (3.3: .venv) with its own Airflow home (SQLite metadata DB: Airflow 2
## looks connections up there after env vars). compat/airflow-<minor>.txt pins the release and
## what it needs with today's dependencies (its constraints file is not reachable from here).
## One cell: `make test-compat-3.1`. compat/matrix.sh runs them all, each even if one failed,
## and sums up.
COMPAT_VERSIONS ?= 2.11 3.0 3.1 3.2 3.3
COMPAT_CELLS := $(addprefix test-compat-,$(COMPAT_VERSIONS))
.PHONY: test-compat $(COMPAT_CELLS)
.PRECIOUS: .venv-airflow-%/.installed-stamp

.venv-airflow-%/.installed-stamp: pyproject.toml compat/airflow-%.txt
	$(PYTHON) -m venv .venv-airflow-$*
	.venv-airflow-$*/bin/python -m pip install -q --upgrade pip
	.venv-airflow-$*/bin/python -m pip install -q -e '.[test]' -c compat/airflow-$*.txt apache-airflow
	touch $@

# Airflow 3.3 is what `make install` puts in .venv (the newest release): its cell runs there, after
# checking that .venv holds the release compat/airflow-3.3.txt pins (`make test` runs it too).
.venv-airflow-3.3/.installed-stamp: $(STAMP) compat/airflow-3.3.txt
	@pin=$$(sed -n 's/^apache-airflow==//p' compat/airflow-3.3.txt); \
	have=$$($(BIN)/python -c 'import airflow; print(airflow.__version__)'); \
	[ "$$have" = "$$pin" ] || { echo ".venv has Airflow $$have, compat/airflow-3.3.txt pins $$pin"; exit 1; }
	mkdir -p .venv-airflow-3.3
	touch $@

$(COMPAT_CELLS): test-compat-%: .venv-airflow-%/.installed-stamp
	@v="$(abspath $(if $(filter 3.3,$*),$(VENV),.venv-airflow-$*))"; \
	env="PATH=$$v/bin:$$PATH AIRFLOW_HOME=$$v/airflow-home AIRFLOW__CORE__LOAD_EXAMPLES=False"; \
	echo "::: Airflow $$($$v/bin/python -c 'import airflow; print(airflow.__version__)') in $$v"; \
	env $$env $$v/bin/airflow db migrate > $$v/db-migrate.log 2>&1 || { cat $$v/db-migrate.log; exit 1; }; \
	env $$env $$v/bin/python -m pytest -q -p no:cacheprovider -rs

test-compat:
	COMPAT_VERSIONS="$(COMPAT_VERSIONS)" MAKE="$(MAKE)" bash compat/matrix.sh

## make wheel-test: build the sdist and the wheel, install the wheel (with the latest Airflow)
## into a clean .venv-wheel and check what Airflow sees of it (tests/packaging).
WHEEL_VENV := $(abspath .venv-wheel)

wheel-test: install
	rm -rf dist $(WHEEL_VENV)
	$(BIN)/python -m pip install -q build
	$(BIN)/python -m build --outdir dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install -q dist/*.whl
	WHEEL_TEST_VENV=$(WHEEL_VENV) WHEEL_TEST_DIST=$(abspath dist) \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/packaging

## make bench: performance figures against the emulator (bulk cancel, triggerer footprint, import
## cost, sensor latency), beside the http provider, with PASS/FAIL per bar (bench/run.py).
.PHONY: bench
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	PATH="$(BIN):$$PATH" $(BIN)/python bench/run.py

## make e2e-celery: a distributed Airflow 3 (CeleryExecutor, PostgreSQL, Redis, two Celery workers,
## two triggerers) runs four scale-out scenarios against the emulator (tests/e2e/run_e2e_celery.py).
## Installs Debian's postgresql and redis-server when missing (apt-get; sudo when not root) and the
## celery extra into .venv; starts and stops its own PostgreSQL and Redis on free ports.
.PHONY: e2e-celery
CELERY_STAMP := $(VENV)/.celery-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CELERY_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[celery]'
	touch $(CELERY_STAMP)

e2e-celery: $(CELERY_STAMP)
	@if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		echo "installing postgresql and redis-server (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends postgresql redis-server; \
	fi
	PATH="$(BIN):$$PATH" $(BIN)/python -m tests.e2e.run_e2e_celery
