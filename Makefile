# rdc_keras developer commands. `make test` and `make demo` bootstrap .venv on first use.
# PYTHON may be a command on PATH or a path to an interpreter (make test PYTHON=python3.12).
PYTHON ?= python3.11
PYVERSION = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYVER := $(call PYVERSION,$(PYTHON))
# A pyenv shim refuses a version that `pyenv global` does not list: use that version's interpreter.
PYTHON_ASKED := $(PYTHON)
ifeq ($(PYVER),)
override PYTHON := $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(subst python,,$(notdir \
	$(PYTHON)))*/bin/$(notdir $(PYTHON))))
PYVER := $(if $(PYTHON),$(call PYVERSION,$(PYTHON)))
endif
ifeq ($(PYVER),)
$(error PYTHON=$(PYTHON_ASKED) does not run; give a Python 3.11 or 3.12 interpreter)
endif
ifeq ($(filter 3.11 3.12,$(PYVER)),)
$(error PYTHON=$(PYTHON_ASKED) is Python $(PYVER); rdc_keras supports 3.11 and 3.12 (README))
endif
# One virtual environment per Python version: .venv (3.11, the default) and .venv-3.12.
VENV ?= $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
BIN := $(VENV)/bin
STAMP := $(VENV)/.rdc_keras-installed
DEMO_DIR ?= runs/demo

.PHONY: test test-all lint format demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2" wheel

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -q

test-all: lint
	$(BIN)/python -m pytest -q -m "slow or not slow"

demo: $(STAMP)
	$(BIN)/rdc-experiment --preset=digits --rates=3:3 --noexport --seeds=0,1,2 --verbose=0 --workdir=$(DEMO_DIR)/rdc
	$(BIN)/rdc-experiment --preset=digits-rdp --base=paper --e2e_lambda_p=0,0.01,0.02 \
		--universal_lambda_p=0,0.01,0.02 --noexport --seed=0 --verbose=0 --workdir=$(DEMO_DIR)/rdp
	@echo "demo reports: $(DEMO_DIR)/rdc/report.md (classification), $(DEMO_DIR)/rdp/report.md (perception)"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
