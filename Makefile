# ltsflow: two commands set everything up on a fresh Debian 12 (python3, python3-venv, make, git).
#   make build   create .venv, install ltsflow, compile the default spec into out/
#   make test    install what the tests need (apt-get too, when root), then run every test, in
#                PYTEST_WORKERS processes (3: many tests wait on a service; PYTEST_WORKERS=0 runs one)
#   make reference  rewrite README.md's spec reference from the models in compiler/spec.py, and its message from SPEC's
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SPEC ?= fixtures/specs/lts-template.yaml
OUT ?= out
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 3
BENCH_ARGS ?=

.PHONY: build test check plan reference bench clean system-packages

build: $(VENV)/.installed
	$(BIN)/ltsflow build $(SPEC) -o $(OUT)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $@

system-packages:
	bash tests/system-packages.sh

test: build $(VENV)/.test-installed system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

check: $(VENV)/.installed
	$(BIN)/ltsflow check $(SPEC)

plan: $(VENV)/.installed
	$(BIN)/ltsflow plan $(SPEC)

reference: $(VENV)/.installed
	$(BIN)/ltsflow reference --spec $(SPEC) --write README.md

clean:
	rm -rf $(OUT) .pytest_cache

bench: build $(VENV)/.test-installed system-packages
	$(BIN)/python -m tests.bench $(BENCH_ARGS)
