# The two commands a newcomer needs:  `make lab`  and  `make test`.
# Both build everything from nothing into .venv (Python >= 3.10 on PATH as python3).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Jupyter refuses to run as root (containers) unless told to.
USER_ID    ?= $(shell id -u)
LAB_FLAGS  ?= $(if $(filter 0,$(USER_ID)),--allow-root)

.PHONY: setup lab demo test test-js lint bench-env clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: these releases install from this environment's disk.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev,text,dask]'
	touch $(STAMP)

setup: $(STAMP)

## The main job: JupyterLab on the quickstart notebook (the headless demo until it exists).
lab: setup
	@if [ -f notebooks/01_quickstart.ipynb ]; then \
		$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/01_quickstart.ipynb; \
	else \
		$(VENV)/bin/alaas-lab demo; \
	fi

demo: setup
	$(VENV)/bin/alaas-lab demo

lint: setup
	$(VENV)/bin/ruff check alaas_lab tests benchmarks notebooks

## The whole test suite: lint, the front end's unit tests (Node), then pytest.
test: lint test-js
	$(PY) -m pytest

## The widgets' pure front-end logic (js/*.js) under Node's built-in test runner.
test-js:
	@command -v node >/dev/null 2>&1 || { echo "make test-js: node is not on PATH;" \
		"install Node.js >= 18 (https://nodejs.org) to run the front end's tests" \
		"(tests/js/*.test.mjs)." >&2; exit 1; }
	node --test tests/js/*.test.mjs

## Peers for benchmarks/strategies.py live in their own environment.
bench-env: setup
	$(PYTHON) -m venv --system-site-packages .bench-venv
	.bench-venv/bin/pip install --quiet -r benchmarks/requirements.txt

clean:
	rm -rf $(VENV) .bench-venv .pytest_cache .ruff_cache
