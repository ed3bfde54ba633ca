# Everything a fresh machine needs comes from here and pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up, then run the main job
run: setup
	$(BIN)/perfaudit run

serve: setup
	$(BIN)/perfaudit serve

## test: the whole test suite (what CI runs)
test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check perfaudit tests benchmarks
	$(BIN)/ruff format --check perfaudit tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_webhook_flow.py

clean:
	rm -rf $(VENV) .perfaudit .pytest_cache
