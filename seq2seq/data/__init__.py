"""Data pipeline: sources → sentencepiece tokenizer → token-budget batches.

data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=cfg.seed)
for batch in data.batches("train", epoch): ...
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module; imported on first use, so translating (tokenizer and batching only) does not
# pay for the Hugging Face `datasets` import that reading corpora needs
_EXPORTS = {
    "SPLITS": "seq2seq.data.sources",
    "Batch": "seq2seq.data.batch",
    "PreparedData": "seq2seq.data.prepare",
    "SubwordTrainer": "seq2seq.data.tokenizer",
    "Tokenizer": "seq2seq.data.tokenizer",
    "batch_sources": "seq2seq.data.batching",
    "check_data_config": "seq2seq.data.prepare",
    "prepare_data": "seq2seq.data.prepare",
}

__all__ = [
    "SPLITS",
    "Batch",
    "PreparedData",
    "SubwordTrainer",
    "Tokenizer",
    "batch_sources",
    "check_data_config",
    "prepare_data",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
