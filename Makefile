# One-command entry points (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: install test test-slow run bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(VENV)/.installed

install: $(VENV)/.installed

## install (if needed) and run the default test suite
test: install
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

## the long checks as well
test-slow: install
	$(PY) -m pytest -n 2 -m slow

## install (if needed) and solve the default problem (1D chain N=16, m2=1, lam=6)
run: install
	$(VENV)/bin/qrg solve --out runs/default --force

clean:
	rm -rf $(VENV) runs bench .pytest_cache
