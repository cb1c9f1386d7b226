#!/usr/bin/env bash
# Here, before a device call: put into .gpu/ (git-ignored, carried by the device tool with
# `carry: [".gpu"]`) what the GPU machine lacks: the Multi30k copy (../shared does not travel)
# and wheels of the Python packages its image does not hold (it has torch, sentencepiece,
# sacrebleu, tensorboard, matplotlib, pandas, pyarrow; not hydra-core or datasets).
# Needs `make install` first. Usage: bash scripts/gpu_prepare.sh [path/to/multi30k]   then   scripts/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/multi30k}
mkdir -p .gpu/multi30k .gpu/whl
cp "$data"/*.gz .gpu/multi30k/
# the versions this checkout's .venv runs; all are pure Python, so `pip wheel` builds a wheel
# where PyPI has only a source archive (antlr4's); --no-deps: each missing package is named
packages="hydra-core omegaconf antlr4-python3-runtime datasets dill fsspec entmax"
pin() { .venv/bin/python -m pip freeze | grep -iE "^($(echo "$1" | tr ' ' '|'))=="; }
rm -f .gpu/whl/*.whl
.venv/bin/python -m pip wheel -q --no-deps -w .gpu/whl $(pin "$packages")
# multiprocess ships one wheel per Python version: take the device's (3.12)
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  -d .gpu/whl "$(pin multiprocess)"
du -sh .gpu
