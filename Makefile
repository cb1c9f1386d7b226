# Every target installs what it needs on a fresh machine first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The offline copy of Multi30k, used when it sits beside the checkout; otherwise the
# default config downloads it from the public repository.
DATA_ROOT ?= $(wildcard ../shared/datasets/multi30k)
DATA_ARG := $(if $(DATA_ROOT),data.root=$(abspath $(DATA_ROOT)),)
# the folder clean-data empties: data/ of this checkout, where downloads and prepared data go
# unless SEQ2SEQ_CACHE or cache_dir= moved them (then name that folder explicitly)
DATA_HOME ?= data
NPROC ?= 2
ARGS ?=

.PHONY: help install train data clean-data test test-slow lint bench bench-startup compare train-ddp clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)  ## create .venv with torch 2.13.0 (CPU) and the package

train: $(STAMP)  ## train the default experiment (Multi30k de-en, RNN + Bahdanau) and report test BLEU
	$(PY) -m seq2seq.train $(DATA_ARG) $(ARGS)

data: $(STAMP)  ## prepare the default data set: split sizes, vocabulary, batches, where its files lie
	$(PY) -m seq2seq.data $(DATA_ARG) $(ARGS)

# Only the folders the toolkit writes in each data set's folder go (see seq2seq/paths.py):
# data/README.md and any corpus of your own under data/ stay.
clean-data:  ## remove what was downloaded or prepared under DATA_HOME (default data/)
	@test ! -d $(DATA_HOME) || find $(DATA_HOME) -mindepth 2 -maxdepth 2 -type d \( -name downloads \
	  -o -name tokenizers -o -name hub \) -prune -printf 'removing %p\n' -exec rm -rf -- {} +
	@test ! -d $(DATA_HOME) || find $(DATA_HOME) -mindepth 1 -maxdepth 1 -type d -empty -delete

test: $(STAMP)  ## fast test suite (a few minutes on 2 cores)
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-slow: $(STAMP)  ## slow tests: every attention variant and the Transformer trained to the toy-task thresholds; full Multi30k statistics
	$(PY) -m pytest -m "slow and not slurm and not browser" -q $(ARGS)

# Debian packages, installed as root when missing (apt-get)
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
.PHONY: test-slurm test-browser

test-slurm: $(STAMP)  ## Slurm tests on a one-node Slurm it starts and stops (scripts/local_slurm.sh)
	$(PY) -m pip install -q -c constraints.txt -e '.[slurm]'
	$(PY) -m pytest -m slurm -q $(ARGS)

test-browser: $(STAMP)  ## TensorBoard in headless Chromium (installs chromium and its driver)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	    || { apt-get update -q && $(APT_INSTALL) chromium chromium-driver; }
	$(PY) -m pytest -m browser -q $(ARGS)

lint: $(STAMP)  ## ruff check and format check
	$(VENV)/bin/ruff check seq2seq tests scripts
	$(VENV)/bin/ruff format --check seq2seq tests scripts

bench: $(STAMP)  ## speed benchmark on Multi30k: writes bench/results.json and bench/results.md
	$(PY) -m seq2seq.bench $(DATA_ARG) $(ARGS)

bench-startup: $(STAMP)  ## start-up times of train --help and translate: writes bench/startup.md
	$(PY) -m seq2seq.bench startup $(ARGS)

compare: $(STAMP)  ## short attention comparison on a toy task: sweep + comparison report
	rm -rf runs/compare_smoke  # stale event files would show twice in TensorBoard
	$(PY) -m seq2seq.train -m experiment=compare_attention_smoke hydra.sweep.dir=runs/compare_smoke $(ARGS)
	$(PY) -m seq2seq.compare runs/compare_smoke

# The attention study (docs/compare.md): fixed sweep directories, so that rerunning a target
# continues its unfinished runs and skips its finished ones (trainer.resume=auto).
STUDY_DIR ?= runs/study
STUDY_CURVE_DIR ?= runs/study_curve
ABLATION_DIR ?= runs/ablations
# the variants the ablations change: the Transformer, whose BLEU goal the study's budget misses
# (its best RNN meets its own); e.g. ABLATION_VARIANTS=bahdanau,transformer adds an RNN
ABLATION_VARIANTS ?= transformer
# the variants whose score the score-scale ablation divides by sqrt(d): luong_general,luong_dot
# adds the dot score
SCORE_ABLATION_VARIANTS ?= luong_general
# the gold alignments the study's attention is scored on (AER): the offline copy when it sits
# beside the checkout, else configs/alignment/rwth_de_en.yaml downloads them
ALIGN_ROOT ?= $(wildcard ../shared/datasets/alignment/rwth-de-en)
ALIGN_ARG := $(if $(ALIGN_ROOT),alignment.root=$(abspath $(ALIGN_ROOT)),)
# where `make study` also writes the results page (and its figures into its img/results/)
RESULTS ?= docs/results.md
# scripts/attention_scores.py's table of the runs, beside the page, which shows it
RESULT_SCORES = $(RESULTS:.md=_scores.md)
# the file whose study-summary markers get the study's headline table and figures (empty: none)
README_SUMMARY ?= README.md
# runs of the study: every configs/model/attention file and the Transformer × the two seeds of
# attention_study.yaml (seq2seq/variants.py)
STUDY_RUNS = $(shell echo $$(( ($(words $(wildcard configs/model/attention/*.yaml)) + 1) * 2 )))
# STUDY_JOBS: that many runs at once (Hydra's joblib launcher), one torch thread each; 2 by
# default: on 2 cores two one-thread runs train 1.19x (RNN) / 1.33x (Transformer) the tokens/s
# of one two-thread run (scripts/study_jobs.sh, bench/study_jobs/study_jobs.md); 1: one at a time
STUDY_JOBS ?= 2
# STUDY_HOURS: the most the study may take; the learning curve's budget is cut to fit it
STUDY_HOURS ?= 8
STUDY_LAUNCH = $(if $(filter-out 1,$(STUDY_JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(STUDY_JOBS) trainer.num_threads=1)
.PHONY: study study-curve ablations

study: $(STAMP)  ## the attention study (hours): all variants × 2 seeds on Multi30k, resumable; then the report
	$(PY) -m seq2seq.train -m experiment=attention_study hydra.sweep.dir=$(STUDY_DIR) trainer.resume=auto $(STUDY_LAUNCH) $(DATA_ARG) $(ARGS)
	@# each finished run's attention scored as word alignment (AER, ~15 s a run); the reference
	@# aligner eflomal (training corpus + gold pairs, the same for every run) only once
	set -e; eflomal=true; for run in $$(dirname $(STUDY_DIR)/*/metrics.json); do \
	  test -e $$run/eval/align.rwth_de_en/metrics.json && continue; \
	  $(PY) -m seq2seq.align checkpoint=$$run alignment=rwth_de_en eflomal=$$eflomal $(ALIGN_ARG); \
	  eflomal=false; \
	done
	@# how far apart each RNN run's scores lie before the softmax (~8 s a run), for the page
	$(PY) scripts/attention_scores.py $$(dirname $(STUDY_DIR)/*/metrics.json $(wildcard $(addsuffix /*/metrics.json,$(ABLATION_SWEEPS)))) > $(RESULT_SCORES)
	$(PY) -m seq2seq.compare $(STUDY_DIR) --results $(RESULTS) --scores $(RESULT_SCORES) $(if $(README_SUMMARY),--readme $(README_SUMMARY)) $(if $(wildcard $(ABLATION_DIR)/multirun.yaml),--ablations $(ABLATION_DIR)) $(if $(wildcard $(STUDY_CURVE_DIR)/multirun.yaml),--curve $(STUDY_CURVE_DIR))

# The ablation sweeps' directories under $(ABLATION_DIR): the small-model and the score-scale
# sweeps train one run each by default, so they run side by side
ABLATION_SWEEPS = $(ABLATION_DIR) $(ABLATION_DIR)/small $(ABLATION_DIR)/score
ablations: $(STAMP)  ## one-change ablations of the study's recipe (hours), resumable; each run's last-5 average scored
	scripts/ablation_baselines.sh $(STUDY_DIR) $(ABLATION_DIR) $(ABLATION_VARIANTS),$(SCORE_ABLATION_VARIANTS)
	$(PY) -m seq2seq.train -m experiment=attention_ablation variant=$(ABLATION_VARIANTS) hydra.sweep.dir=$(ABLATION_DIR) trainer.resume=auto $(STUDY_LAUNCH) $(DATA_ARG) $(ARGS)
	set -e; $(PY) -m seq2seq.train -m experiment=attention_ablation_small variant=$(ABLATION_VARIANTS) hydra.sweep.dir=$(ABLATION_DIR)/small trainer.resume=auto $(STUDY_LAUNCH) $(DATA_ARG) $(ARGS) & small=$$!; \
	  $(PY) -m seq2seq.train -m experiment=attention_ablation_score variant=$(SCORE_ABLATION_VARIANTS) hydra.sweep.dir=$(ABLATION_DIR)/score trainer.resume=auto $(STUDY_LAUNCH) $(DATA_ARG) $(ARGS); \
	  wait $$small
	set -e; for run in $$(dirname $(addsuffix /*/metrics.json,$(ABLATION_SWEEPS))); do \
	  test -e $$run/eval/test.beam5.average_last5/metrics.json && continue; \
	  $(PY) -m seq2seq.average $$run --last 5; \
	  $(PY) -m seq2seq.evaluate checkpoint=$$run/checkpoints/average_last5.pt search.beam_size=5 progress=false; \
	done
	$(PY) -m seq2seq.compare $(ABLATION_DIR)

study-curve: $(STAMP)  ## learning curves of the default RNN and the Transformer; prints the study's budget
	$(PY) -m seq2seq.train -m experiment=attention_study_curve hydra.sweep.dir=$(STUDY_CURVE_DIR) trainer.resume=auto $(DATA_ARG) $(ARGS)
	$(PY) -m seq2seq.learning_curve $(STUDY_CURVE_DIR) --study-runs $(STUDY_RUNS) --jobs $(STUDY_JOBS) --max-hours $(STUDY_HOURS)

train-ddp: $(STAMP)  ## data-parallel training of the default experiment on NPROC CPU processes
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m seq2seq.train $(DATA_ARG) $(ARGS)

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
