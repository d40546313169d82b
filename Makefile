# The README's two commands: `make demo` (main job on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/experimenthub demo

test: $(STAMP)
	$(VENV)/bin/ruff check framework tests bench
	$(PY) -m pytest -ra $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check framework tests bench
	$(VENV)/bin/ruff format --check framework tests bench

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .experimenthub .pytest_cache
