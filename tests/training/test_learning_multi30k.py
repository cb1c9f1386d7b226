"""Learning on real data in the default suite: a small Transformer overfits a Multi30k slice.

The slow tests hold every variant to the toy tasks' thresholds; this one makes every CI run
train on real sentences (sentencepiece on German/English, the multi30k data config, greedy
decoding, sacreBLEU) and fail if the model does not learn them.
"""

from __future__ import annotations

import json
from pathlib import Path

import support

from seq2seq.data.files import read_lines
from seq2seq.train import train

from .conftest import compose_config

PAIRS = 150  # the first pairs of Multi30k's train split with at most 7 words on either side
WORDS = 7
# training-slice BLEU of this run: 0.0 at its first validation, 67.7 after its 300 updates
# (`pytest tests/training/test_learning_multi30k.py`, 2-core CPU machine, 2026-12-01, 37 s with
# one thread on a loaded machine); the threshold leaves room for other CPUs' arithmetic
MIN_BLEU = 40.0


def write_slice(root: Path) -> Path:
    """train = test = the slice (BLEU on the sentences trained on); validation = its first 5."""
    if not (support.MULTI30K / "train.de.gz").is_file():
        support.missing_data(f"the offline Multi30k copy is not at {support.MULTI30K}")
    de = read_lines(support.MULTI30K / "train.de.gz")[:3000]
    en = read_lines(support.MULTI30K / "train.en.gz")[:3000]
    short = [i for i in range(3000) if max(len(de[i].split()), len(en[i].split())) <= WORDS]
    assert len(short) >= PAIRS
    for lang, lines in (("de", de), ("en", en)):
        chosen = [lines[i] for i in short[:PAIRS]]
        text = "".join(f"{line}\n" for line in chosen)
        (root / f"train.{lang}").write_text(text, encoding="utf-8")
        (root / f"test_2016_flickr.{lang}").write_text(text, encoding="utf-8")
        (root / f"val.{lang}").write_text("".join(f"{x}\n" for x in chosen[:5]), encoding="utf-8")
    return root


def test_a_small_transformer_overfits_a_multi30k_slice(tmp_path):
    data = write_slice(tmp_path)
    cfg = compose_config(
        "train",
        "data=multi30k",
        f"data.root={data}",
        "data.max_tokens=800",
        f"cache_dir={tmp_path / 'cache'}",
        "tokenizer.vocab_size=200",
        "model=transformer",
        "model.d_model=64",
        "model.ff_size=128",
        "model.num_heads=2",
        "model.num_encoder_layers=1",
        "model.num_decoder_layers=1",
        "model.dropout=0.0",
        "trainer.label_smoothing=0.0",
        "scheduler=constant",
        "optim.lr=3e-3",
        "trainer.max_updates=300",
        "trainer.validate_every=100000",  # validates at each epoch end (5 sentences)
        "trainer.progress=false",
        "trainer.num_threads=1",
        "trainer.precision=fp32",  # the same run on every CI machine, with bf16 or without
        "search=greedy",
    )
    train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["updates"] == 300  # about 30 passes over the slice
    assert metrics["test"]["greedy"]["bleu"] > MIN_BLEU
