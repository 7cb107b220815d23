# Two commands do everything on a fresh Debian 12 / Python 3.11 machine:
#   make demo   the main job (sets up, then runs `curate demo`)
#   make test   the test suite (sets up, then runs pytest)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.curate-installed

.PHONY: setup demo test bench doctor clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m curate.db ensure
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/curate demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/bench_import.py

doctor: setup
	$(VENV)/bin/curate doctor

clean-venv:
	rm -rf $(VENV)
