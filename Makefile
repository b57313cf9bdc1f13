# tap-autopilot build/test plumbing.
#
#   make venv    .venv with the tap installed editable + test and dev extras, pinned by constraints.txt
#   make lint    ruff check, ruff format --check, mypy (config: ruff.toml, mypy.ini)
#   make tools   one virtualenv per external Singer tool under .tools/ (they pin old singer-python)
#   make test    venv + tools (installed in parallel), make lint, then pytest tests (unit + integration)
#   make demo    sandbox -> tap-autopilot -> target-jsonl into demo-output/ (scripts/demo.sh)
#   make bench   benchmarks/run.py
#   make mutation  mutmut on the rule modules against tests/unit (config: setup.cfg; not part of make test)
#   make clean   remove venvs, tool venvs, demo output and build debris
#
# Everything is stamp-based: a re-run with nothing changed does no pip work.
# .venv is refreshed when setup.py or constraints.txt changes; a tool venv is rebuilt from scratch
# when its pinned requirements file (scripts/tools/<tool>.txt) changes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

PYTHON ?= python3.11
JOBS ?= 4
VENV := .venv
TOOLS_DIR := .tools
TOOL_REQS := scripts/tools
TOOL_NAMES := target-jsonl target-postgres singer-tools tap-autopilot-0.3.0 meltano
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
SMOKE_mutmut := mutmut --help

.PHONY: all venv tools setup lint test demo bench mutation clean

all: test

# ---- project virtualenv ------------------------------------------------------
venv: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	@echo ">> $(VENV): pip install -c constraints.txt -e '.[test,dev]'"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(PIP_ENV) $(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[test,dev]' $(QUIET)
	@touch $@

# ---- external tools, one venv each -------------------------------------------
# Created --without-pip and filled by the base interpreter's pip (--python):
# skips ensurepip, which costs ~10 s per venv here. To add a package by hand:
#   python3.11 -m pip --python .tools/<tool>/bin/python install ...
tools: $(TOOL_STAMPS)

$(TOOLS_DIR)/%/.installed: $(TOOL_REQS)/%.txt
	@echo ">> $(TOOLS_DIR)/$*: pip install -r $<"
	@rm -rf $(TOOLS_DIR)/$*
	@$(PYTHON) -m venv --without-pip $(TOOLS_DIR)/$*
	@$(PIP_ENV) $(PYTHON) -m pip --python $(TOOLS_DIR)/$*/bin/python install -q -r $< $(QUIET)
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

test: setup
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest tests -q

demo: $(VENV)/.installed $(TOOLS_DIR)/target-jsonl/.installed
	bash scripts/demo.sh

bench: setup
	$(VENV)/bin/python benchmarks/run.py

# Mutation testing: its own tool venv (mutmut + the tap + its test extra, scripts/tools/mutmut.txt),
# rebuilt when the pins, setup.py or constraints.txt change. Every run starts from a fresh mutants/
# copy so the score is for the code as it is. MUTATION_JOBS: the machine is shared; 2 is plenty.
# While working on one module: .tools/mutmut/bin/mutmut run 'tap_autopilot.state*'
MUTATION_JOBS ?= 2
$(TOOLS_DIR)/mutmut/.installed: setup.py constraints.txt

mutation: $(TOOLS_DIR)/mutmut/.installed
	rm -rf mutants
	$(TOOLS_DIR)/mutmut/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(TOOLS_DIR)/mutmut/bin/python scripts/mutation_score.py

clean:
	rm -rf $(VENV) $(TOOLS_DIR) demo-output mutants .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
