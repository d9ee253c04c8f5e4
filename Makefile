# The commands a newcomer needs. Everything runs from a fresh clone with python3 (>= 3.11).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOX := $(BIN)/tox

.PHONY: help demo test install docs lint typecheck coverage bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo:  ## the main job: see README.md (needs nothing but Python)
	$(PYTHON) -m vistrit demo

test: $(TOX)  ## install what the tests need (in .venv and .tox) and run them
	$(TOX) run -e test

install: $(TOX)  ## Vistrit and its development tools, editable, in .venv
	$(BIN)/pip install --quiet -e '.[dev]'

docs: $(TOX)  ## build the docs into docs/_build/html (warnings are errors)
	$(TOX) run -e docs

lint: $(TOX)  ## ruff
	$(TOX) run -e lint

typecheck: $(TOX)  ## mypy --strict
	$(TOX) run -e type

coverage: $(TOX)  ## HTML coverage report of the last test run, in htmlcov/
	$(TOX) run -e coverage

bench:  ## measure: the codec and the four cluster workloads (a minute or two)
	$(PYTHON) -m vistrit bench all

clean:  ## remove what the targets above made
	rm -rf $(VENV) .tox .coverage .coverage.* htmlcov docs/_build build dist *.egg-info

$(TOX):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet 'tox>=4'
