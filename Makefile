# tap-autopilot build/test plumbing.
#
#   make venv    .venv with the tap installed editable + test and dev extras, pinned by constraints.txt
#   make lint    ruff check, ruff format --check, mypy (config: ruff.toml, mypy.ini)
#   make tools   one virtualenv per external Singer tool under .tools/ (they pin old singer-python)
#   make unit    make lint, then tests/unit alone: the inner loop (needs .venv only, no tool venvs)
#   make test    venv + tools (installed in parallel), make lint, then pytest tests (unit + integration);
#                then the unit and core end-to-end tests under every other supported Python found
#   make demo    sandbox -> tap-autopilot -> target-jsonl into demo-output/, then target-duckdb and
#                dbt build into demo-output/warehouse.duckdb (scripts/demo.sh)
#   make bench   benchmarks/run.py
#   make mutation  mutmut on the rule modules against tests/unit (config: setup.cfg; not part of make test)
#   make clean   remove venvs, tool venvs, demo output and build debris
#
# Everything is stamp-based: a re-run with nothing changed does no pip work.
# .venv is refreshed when setup.py or constraints.txt changes; a tool venv is rebuilt from scratch
# when its pinned requirements file (scripts/tools/<tool>.txt) changes.

SHELL := /bin/bash
VENV := .venv
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

# The interpreter: PYTHON if given, else the newest CPython from 3.11 up that
# scripts/pythons.sh finds (PATH, then pyenv's versions), said once per make.
# .venv is rebuilt when it was made by another minor version.
SUPPORTED_PYTHONS := 3.11 3.12 3.13
# version@path of each CPython found, newest first (found once; sub-makes inherit it)
ifeq ($(origin FOUND_PYTHONS),undefined)
FOUND_PYTHONS := $(shell scripts/pythons.sh | tr ' ' '@')
endif
export FOUND_PYTHONS
found_version = $(word 1,$(subst @, ,$(1)))
found_path = $(word 2,$(subst @, ,$(1)))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(call found_path,$(firstword $(FOUND_PYTHONS)))
ifeq ($(PYTHON),)
$(error no CPython 3.11 or newer found: install one (e.g. apt install python3) or set PYTHON=/path/to/python3)
endif
$(info make: using $(PYTHON) (CPython $(call found_version,$(firstword $(FOUND_PYTHONS)))), the newest CPython >= 3.11 found; set PYTHON to choose)
endif
export PYTHON
PYTHON_MINOR := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV_MINOR := $(if $(wildcard $(VENV)/bin/python),$(shell $(VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
VENV_REBUILD := $(if $(VENV_MINOR),$(if $(filter $(PYTHON_MINOR),$(VENV_MINOR)),,venv-rebuild))
# The tools' interpreter: TOOLS_PYTHON if given, else the oldest CPython >= 3.11 found
# (else PYTHON). Their pins were frozen on 3.11, and the published tap 0.3.0 (the
# benchmark's baseline) does not start on 3.12 or 3.13 (its urllib3 imports six.moves).
ifeq ($(origin TOOLS_PYTHON),undefined)
TOOLS_PYTHON := $(or $(call found_path,$(lastword $(FOUND_PYTHONS))),$(PYTHON))
endif
# The other minor versions found: make test runs the unit and core end-to-end tests
# under each, in its own venv (.venvs/<version>).
OTHER_PYTHONS := $(foreach found,$(FOUND_PYTHONS),$(if $(filter $(PYTHON_MINOR).%,$(call found_version,$(found))),,$(call found_path,$(found))))
CORE_TESTS := tests/unit tests/integration/test_cli.py tests/integration/test_sync.py
JOBS ?= 4
TOOLS_DIR := .tools
TOOL_REQS := scripts/tools
TOOL_NAMES := target-jsonl target-postgres singer-tools tap-autopilot-0.3.0 meltano \
	target-duckdb pipelinewise-target-postgres dbt
TOOL_STAMPS := $(TOOL_NAMES:%=$(TOOLS_DIR)/%/.installed)

# The pip.conf on these machines lists local index dirs that mostly do not
# exist, and pip warns about that once per package looked up. Drop exactly
# those lines; every other line, errors included, still shows, and pip's exit
# status is kept (pipefail).
PIP_NOISE := is ignored: it is neither a file nor a directory
QUIET := 2>&1 | { grep -v '$(PIP_NOISE)' || true; }
PIP_ENV := PIP_DISABLE_PIP_VERSION_CHECK=1

# Command run once after installing each tool, to prove its entry point starts.
SMOKE_target-jsonl := target-jsonl --help
SMOKE_target-postgres := target-postgres --version
SMOKE_singer-tools := singer-check-tap --help
SMOKE_tap-autopilot-0.3.0 := tap-autopilot --help
SMOKE_meltano := meltano --version
SMOKE_target-duckdb := target-duckdb --help
SMOKE_pipelinewise-target-postgres := target-postgres --help
# not `dbt --version`: it asks PyPI for the latest release
SMOKE_dbt := python -c 'import dbt.adapters.duckdb, dbt.adapters.postgres'
SMOKE_mutmut := mutmut --help

.PHONY: all venv tools setup lint unit test test-other-pythons venv-rebuild demo bench mutation clean

all: test

# ---- project virtualenv ------------------------------------------------------
venv: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt $(VENV_REBUILD)
	@echo ">> $(VENV): pip install -c constraints.txt -e '.[test,dev]'"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(PIP_ENV) $(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[test,dev]' $(QUIET)
	@touch $@

venv-rebuild:
	@echo ">> $(VENV) was made by Python $(VENV_MINOR): rebuilding it with $(PYTHON) ($(PYTHON_MINOR))"
	rm -rf $(VENV)

# ---- external tools, one venv each -------------------------------------------
# Created --without-pip and filled by the base interpreter's pip (--python):
# skips ensurepip, which costs ~10 s per venv here. To add a package by hand:
#   $(TOOLS_PYTHON) -m pip --python .tools/<tool>/bin/python install ...
tools: $(TOOL_STAMPS)

$(TOOLS_DIR)/%/.installed: $(TOOL_REQS)/%.txt
	@echo ">> $(TOOLS_DIR)/$*: pip install -r $<"
	@rm -rf $(TOOLS_DIR)/$*
	@$(TOOLS_PYTHON) -m venv --without-pip $(TOOLS_DIR)/$*
	@$(PIP_ENV) $(TOOLS_PYTHON) -m pip --python $(TOOLS_DIR)/$*/bin/python install -q -r $< $(QUIET)
	@$(TOOLS_DIR)/$*/bin/$(SMOKE_$*) >/dev/null
	@touch $@

# venv + tools with parallel pip runs (about halves a fresh setup on 2 cores)
setup:
	@$(MAKE) --no-print-directory -j$(JOBS) --output-sync=target venv tools

# ---- entry points ------------------------------------------------------------
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(VENV)/.installed
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest tests/unit -q

test: setup
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest tests -q
	@$(MAKE) --no-print-directory test-other-pythons

# Unit + core end-to-end tests under each other supported Python found (a venv each).
test-other-pythons:
	@if [ -z "$(strip $(OTHER_PYTHONS))" ]; then \
	    echo ">> other Pythons: none found besides $(PYTHON) (supported: $(SUPPORTED_PYTHONS)); skipped"; fi
	@set -e; for python in $(strip $(OTHER_PYTHONS)); do \
	    version=$$($$python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    venv=.venvs/$$version; \
	    echo ">> $$venv ($$python): unit and core end-to-end tests"; \
	    test -x $$venv/bin/python || $$python -m venv $$venv; \
	    if [ ! -e $$venv/.installed ] || [ setup.py -nt $$venv/.installed ] || [ constraints.txt -nt $$venv/.installed ]; then \
	        $(PIP_ENV) $$venv/bin/python -m pip install -q -c constraints.txt -e '.[test]' $(QUIET); touch $$venv/.installed; fi; \
	    $$venv/bin/python -m pytest -q -p no:cacheprovider $(CORE_TESTS); \
	done

demo: $(VENV)/.installed $(TOOLS_DIR)/target-jsonl/.installed $(TOOLS_DIR)/target-duckdb/.installed $(TOOLS_DIR)/dbt/.installed
	bash scripts/demo.sh

bench: setup
	$(VENV)/bin/python benchmarks/run.py

# Mutation testing: its own tool venv (mutmut + the tap + its test extra, scripts/tools/mutmut.txt),
# rebuilt when the pins, setup.py or constraints.txt change. Every run starts from a fresh mutants/
# copy so the score is for the code as it is. MUTATION_JOBS: the machine is shared; 2 is plenty.
# While working on one module: .tools/mutmut/bin/mutmut run 'tap_autopilot.state.document*'
MUTATION_JOBS ?= 2
$(TOOLS_DIR)/mutmut/.installed: setup.py constraints.txt

mutation: $(TOOLS_DIR)/mutmut/.installed
	rm -rf mutants
	$(TOOLS_DIR)/mutmut/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(TOOLS_DIR)/mutmut/bin/python scripts/mutation_score.py

clean:
	rm -rf $(VENV) .venvs $(TOOLS_DIR) demo-output mutants .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
