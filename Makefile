# Two set-up commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-dev lint typecheck pytest chat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# torch goes first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/supportbot run --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check bot tests actions loadtest
	$(BIN)/ruff format --check bot tests actions loadtest

typecheck: install-dev
	$(BIN)/mypy bot

# two workers: much of the suite waits on subprocesses, servers and sockets (PYTEST_WORKERS=0: one process)
PYTEST_WORKERS ?= 2
pytest: install-dev
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

chat: install
	$(BIN)/supportbot chat

clean:
	rm -rf $(VENV) var/*.db var/index
