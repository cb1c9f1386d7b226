# Every target installs what it needs on a fresh machine first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The offline copy of Multi30k, used when it sits beside the checkout; otherwise the
# default config downloads it from the public repository.
DATA_ROOT ?= $(wildcard ../shared/datasets/multi30k)
DATA_ARG := $(if $(DATA_ROOT),data.root=$(abspath $(DATA_ROOT)),)
NPROC ?= 2
ARGS ?=

.PHONY: help install train data test test-slow lint bench compare train-ddp clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)  ## create .venv with torch 2.13.0 (CPU) and the package

train: $(STAMP)  ## train the default experiment (Multi30k de-en, RNN + Bahdanau) and report test BLEU
	$(PY) -m seq2seq.train $(DATA_ARG) $(ARGS)

data: $(STAMP)  ## print split sizes, vocabulary and batch counts of the default data set
	$(PY) -m seq2seq.data $(DATA_ARG) $(ARGS)

test: $(STAMP)  ## fast test suite (a few minutes on 2 cores)
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-slow: $(STAMP)  ## slow tests: every attention variant and the Transformer trained to the toy-task thresholds; full Multi30k statistics
	$(PY) -m pytest -m slow -q $(ARGS)

lint: $(STAMP)  ## ruff check and format check
	$(VENV)/bin/ruff check seq2seq tests scripts
	$(VENV)/bin/ruff format --check seq2seq tests scripts

bench: $(STAMP)  ## speed benchmark on Multi30k: writes bench/results.json and bench/results.md
	$(PY) -m seq2seq.bench $(DATA_ARG) $(ARGS)

compare: $(STAMP)  ## short attention comparison on a toy task: sweep + comparison report
	rm -rf runs/compare_smoke  # stale event files would show twice in TensorBoard
	$(PY) -m seq2seq.train -m experiment=compare_attention_smoke hydra.sweep.dir=runs/compare_smoke $(ARGS)
	$(PY) -m seq2seq.compare runs/compare_smoke

train-ddp: $(STAMP)  ## data-parallel training of the default experiment on NPROC CPU processes
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m seq2seq.train $(DATA_ARG) $(ARGS)

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
