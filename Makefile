# The README's commands: `make demo` (main job on the embedded default), `make test` (everything, with the
# services) and `make test-unit` (the tests that need no service). The demo installs only the hub; the test
# targets add the dev extra (test tools, API, Celery, pika, prophet). Each install has its own stamp.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
LINT_PATHS := framework tests bench tools

.PHONY: demo test test-unit lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/experimenthub demo

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) tools/check_layers.py
	$(PY) -m pytest -ra $(PYTEST_ARGS)

test-unit: $(DEV_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) tools/check_layers.py
	$(PY) -m pytest -ra -m "not services" $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

bench: $(DEV_STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .experimenthub .pytest_cache
