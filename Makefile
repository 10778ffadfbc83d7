# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test,cluster]"
	touch $(STAMP)

install: $(STAMP)

## make run: create the environment, install, run the quickstart study on the bundled cohort.
run: $(STAMP)
	$(BIN)/explorer run experiments/quickstart.yaml
	$(BIN)/explorer status quickstart

## make test: install everything the tests need (PostgreSQL included) and run the whole suite.
test: $(STAMP)
	./cluster/install_postgres.sh
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sim.py

clean:
	rm -rf $(VENV) studies .pytest_cache
