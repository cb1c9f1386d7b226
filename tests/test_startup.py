"""Commands import what they need when they need it: translating a sentence must not pay for the
Hugging Face `datasets` import (0.8 s here) that only reading corpora needs, nor
`python -m seq2seq.train --help` for torch (1.0 s here), which only training needs. Inference
(search, translate, evaluate, align) is a layer of its own that imports nothing of training."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["seq2seq.translate", "seq2seq.data"])
def test_inference_imports_no_corpus_reader(module):
    probe = f"import sys, {module}; print('datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_translating_imports_no_scorer():
    """sacreBLEU (and its lxml, tabulate, portalocker) is imported when a score is asked for."""
    probe = "import sys, seq2seq.translate; print('sacrebleu' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lazy_data_exports_resolve():
    import seq2seq.data as data

    assert data.Tokenizer.__name__ == "Tokenizer" and callable(data.prepare_data)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        data.nonexistent  # noqa: B018


def test_train_help_imports_no_torch():
    probe = "import sys, seq2seq.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    helped = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "trainer" in helped.stdout


@pytest.mark.parametrize(
    "module",
    [
        "seq2seq.decoding",
        "seq2seq.inference",
        "seq2seq.translate",
        "seq2seq.evaluate",
        "seq2seq.align",
    ],
)
def test_inference_imports_no_training_module(module):
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['seq2seq', 'training']))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


HELP_PROBE = """
import runpy, sys
from hydra._internal.config_repository import CachingConfigRepository
from seq2seq import cli
built = []
init = CachingConfigRepository.__init__
CachingConfigRepository.__init__ = lambda self, d: (built.append(1), init(self, d))[1]
if {disable}:
    cli.HELP_FLAGS = set()  # Hydra's own help: a repository per group
sys.argv = ["train", "--help"]
try:
    runpy.run_module("seq2seq.train", run_name="__main__")
finally:
    print("repositories built:", len(built), file=sys.stderr)
"""


def test_help_builds_one_repository_and_prints_what_hydra_would():
    """cli.share_help_repository: the same help text from 2 repository copies instead of ~260."""
    runs = {}
    for disable in (False, True):
        probe = HELP_PROBE.format(disable=disable)
        runs[disable] = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
    shared, hydra_own = runs[False], runs[True]
    assert "variant: bahdanau" in shared.stdout and "== Config ==" in shared.stdout
    assert shared.stdout == hydra_own.stdout
    built = {k: int(run.stderr.split("repositories built:")[1]) for k, run in runs.items()}
    assert built[False] <= 3 < 100 < built[True], built
