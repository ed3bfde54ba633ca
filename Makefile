# Everything a fresh machine needs comes from here and pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup sysdeps run serve test lint bench audit audit-quick diagnose-reference clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## sysdeps: Debian packages perfaudit uses (valgrind: --measure instructions); as root only
sysdeps:
	@command -v valgrind >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing valgrind (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; \
	  else \
	    echo "warning: valgrind is missing (perfaudit run --measure instructions needs it): sudo apt-get install -y valgrind"; \
	  fi; }

setup: sysdeps $(STAMP)
	@# the connect() counter for external targets (built on first use otherwise; needs gcc)
	@-$(BIN)/python -c "from perfaudit.collect.connections import build_shim; build_shim()" \
	  || echo "warning: no connect() shim (gcc missing?): new connections of external targets are not counted"

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

## audit: the full Phase 4 audit (~45 min); commits-ready report in reports/phase4 and docs
audit: setup
	$(BIN)/perfaudit audit --publish reports/phase4 --docs docs/performance.md

## audit-quick: the CI form of the audit (under 8 minutes), into reports/
audit-quick: setup
	$(BIN)/perfaudit audit --quick

## diagnose-reference: phase3 and optimized with the --diagnose profilers; which switch each
## phase3 finding names, and every finding on optimized (~18 minutes)
diagnose-reference: setup
	$(BIN)/python benchmarks/bench_diagnosis_reference.py

bench: setup
	$(BIN)/python benchmarks/bench_webhook_flow.py

clean:
	rm -rf $(VENV) .perfaudit .pytest_cache
