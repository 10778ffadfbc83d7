# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# what `make run` needs: the package and its runtime dependencies
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# what `make test` needs on top: test tools (import-linter too), PostgreSQL drivers, PyTorch for the gp sampler
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test,cluster]"
	touch $@

install: $(VENV)/.installed

## make run: create the environment, install, run the quickstart study on the bundled cohort, report its twins.
run: $(VENV)/.installed
	$(BIN)/explorer run experiments/quickstart.yaml
	$(BIN)/explorer report quickstart

## make test: install everything the tests need (PostgreSQL server, SLURM and Chromium included), check the
## package's layers and third-party boundaries (import-linter contracts in pyproject.toml), and run the whole suite.
test: $(VENV)/.installed-test
	./cluster/install_postgres.sh
	./cluster/install_slurm.sh
	./tests/install_chromium.sh
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=15 tests

## make bench: simulator speed (sim-s per wall-s) on the bundled 80-region connectome, as JSON.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_sim.py

clean:
	rm -rf $(VENV) studies .pytest_cache
