# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-campaign test lint install clean serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ivr-bridge demo --out demo-out

demo-campaign: $(STAMP)
	$(BIN)/ivr-bridge demo campaign

serve: $(STAMP)
	$(BIN)/ivr-bridge serve

lint: $(STAMP)
	$(BIN)/ruff check ivr_bridge tests benchmarks
	$(BIN)/ruff format --check ivr_bridge tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy ivr_bridge

test: $(STAMP)
	$(BIN)/ruff check ivr_bridge tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy ivr_bridge
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache
