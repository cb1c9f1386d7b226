"""Data pipeline: sources → sentencepiece tokenizer → token-budget batches.

data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=cfg.seed)
for batch in data.batches("train", epoch): ...
"""

from seq2seq.data.batch import Batch
from seq2seq.data.batching import batch_sources
from seq2seq.data.prepare import PreparedData, check_data_config, prepare_data
from seq2seq.data.sources import SPLITS
from seq2seq.data.tokenizer import SubwordTrainer, Tokenizer

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
