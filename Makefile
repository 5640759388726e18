# Model Release Console — developer entry points.
#   make demo         set everything up and open the console on the built-in demo
#   make test         lint + type check + the whole test suite (starts its own services)
#   make bench        benchmarks, each printed as a ratio against a baseline of the same run
#   make screenshots  regenerate screenshots/ from the demo (the page of mrc serve in chromium)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all install demo test lint format bench screenshots services-up services-down clean

all: test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mrc demo

lint: $(STAMP)
	$(BIN)/ruff check core tui tests
	$(BIN)/ruff format --check core tui tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format core tui tests
	$(BIN)/ruff check --fix core tui tests

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks $(BENCH)

screenshots: $(STAMP)
	$(BIN)/python -m tests.screenshots screenshots
	MRC_SCREENSHOT_DIR=$(CURDIR)/screenshots $(BIN)/python -m pytest -q \
		tests/browser/test_serve.py::test_serve_demo_in_chromium

services-up: $(STAMP)
	$(BIN)/python -m tests.services up

services-down: $(STAMP)
	$(BIN)/python -m tests.services down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
