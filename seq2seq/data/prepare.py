"""From the `data` and `tokenizer` configs to batches: load → tokenize → filter → batch."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.data.batch import Batch
from seq2seq.data.batching import Ragged, collate, encode_texts, pack, pooled_orders, sorted_order
from seq2seq.data.sources import SPLITS
from seq2seq.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# data.name names the data set's folder under cache_dir
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def prepare_data(
    data_cfg: DictConfig,
    tokenizer_cfg: DictConfig,
    cache_dir: str | Path,
    seed: int,
    tokenizer: Tokenizer | None = None,
) -> PreparedData:
    """Load the configured corpus, train or reuse its tokenizer, and encode every split.

    A given `tokenizer` (e.g. a checkpoint's) is used as is instead of `tokenizer_cfg`.
    """
    check_data_config(data_cfg)
    # _partial_ then call: the constructor's ValueError reaches the user as is, not wrapped in
    # Hydra's InstantiationException
    source = instantiate(data_cfg.source, _partial_=True)()
    # one folder per data set, so runs on the same data share its downloads and tokenizers
    home = Path(cache_dir) / data_cfg.name
    # said as each step starts: a first run reads or downloads the corpus and trains the
    # tokenizer (seconds to minutes) before anything else is printed
    names = (data_cfg.name, data_cfg.src_lang, data_cfg.tgt_lang)
    log.info("loading %s %s-%s (its downloads and tokenizers: %s)...", *names, home)
    raw = source.load(home)
    _check_splits(raw)
    if tokenizer is None:
        trainer = instantiate(tokenizer_cfg, _partial_=True)()
        languages = (data_cfg.src_lang, data_cfg.tgt_lang)
        tokenizer = trainer.fit(raw["train"]["source"], raw["train"]["target"], home, languages)
    log.info("encoding %s pairs into batches...", f"{sum(len(split) for split in raw.values()):,}")
    return PreparedData(
        raw,
        tokenizer,
        data_cfg.max_tokens,
        data_cfg.max_length,
        seed,
        bucket_pool=data_cfg.get("bucket_pool", 0),
    )


def check_data_config(cfg: DictConfig) -> None:
    """Raise one ValueError naming every bad key, before any file is read."""
    problems = [
        f"data.{key} must be set, e.g. data.{key}=<value> on the command line"
        for key in cfg
        if OmegaConf.is_missing(cfg, key)
    ]
    if not (isinstance(name := cfg.get("name"), str) and _FOLDER_NAME.fullmatch(name)):
        problems.append(
            f"data.name must be a folder name (letters, digits, '.', '_', '-'), got {name!r}"
        )
    for key in ("max_tokens", "max_length"):
        if not _is_positive_int(value := cfg.get(key)):
            problems.append(f"data.{key} must be a positive integer, got {value!r}")
    if not _is_count(value := cfg.get("bucket_pool", 0)):
        problems.append(f"data.bucket_pool must be 0 or a positive integer, got {value!r}")
    for key in ("src_lang", "tgt_lang"):
        if not (isinstance(value := cfg.get(key), str) and value):
            problems.append(f"data.{key} must be a language code, got {value!r}")
    if cfg.get("src_lang") == cfg.get("tgt_lang"):
        problems.append(f"data.src_lang and data.tgt_lang must differ, both are {cfg.src_lang!r}")
    if "_target_" not in (cfg.get("source") or {}):
        problems.append("data.source must be a node with a _target_ (see configs/data/)")
    if problems:
        raise ValueError("invalid data config: " + "; ".join(problems))


def _is_positive_int(value: Any) -> bool:
    return _is_count(value) and value > 0


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_splits(raw: DatasetDict) -> None:
    for split in SPLITS:
        if split not in raw:
            raise ValueError(f"the data source returned no {split!r} split (got {list(raw)})")
        if not {"source", "target"} <= set(raw[split].column_names):
            raise ValueError(
                f"{split} split lacks source/target columns: {raw[split].column_names}"
            )
    if len(raw["train"]) == 0:
        raise ValueError("the training split is empty (after dropping pairs with an empty side)")


@dataclass(frozen=True)
class EncodedPairs:
    source: Ragged  # subword ids, no specials
    target: Ragged

    @classmethod
    def encode(cls, tokenizer: Tokenizer, pairs: Dataset) -> EncodedPairs:
        return cls(
            encode_texts(tokenizer.encode_sources, pairs["source"]),
            encode_texts(tokenizer.encode_targets, pairs["target"]),
        )

    @property
    def padded_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Source + EOS, target + BOS/EOS: what a batch pads to."""
        return self.source.lengths + 1, self.target.lengths + 1


class PreparedData:
    """The splits as raw text and as subword ids, with their tokenizer, ready to batch.

    Training pairs with more than `max_length` subword tokens on either side are dropped (and
    counted); validation and test are never filtered. Each epoch, training pairs are bucketed
    by length within random pools of about `bucket_pool` batches' worth of pairs (0: one pool,
    the whole corpus).
    """

    def __init__(
        self,
        raw: DatasetDict,
        tokenizer: Tokenizer,
        max_tokens: int,
        max_length: int,
        seed: int,
        bucket_pool: int = 0,
    ) -> None:
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not _is_count(bucket_pool):
            raise ValueError(f"bucket_pool must be 0 or a positive integer, got {bucket_pool!r}")
        self.raw, self.tokenizer = raw, tokenizer
        self.max_tokens, self.max_length, self.seed = max_tokens, max_length, seed
        self.encoded = {split: EncodedPairs.encode(tokenizer, raw[split]) for split in SPLITS}
        train = self.encoded["train"]
        too_long = (train.source.lengths > max_length) | (train.target.lengths > max_length)
        self.train_rows = np.flatnonzero(~too_long)
        self.dropped = int(too_long.sum())
        log.info(
            "dropped %d of %d training pairs longer than data.max_length=%d subword tokens",
            self.dropped,
            len(too_long),
            max_length,
        )
        if len(self.train_rows) == 0:
            raise ValueError(
                f"no training pairs left: all {len(too_long)} are longer than "
                f"data.max_length={max_length} subword tokens on some side; raise data.max_length"
            )
        self.pool_size = self._pairs_per_pool(bucket_pool)
        self._eval_batches: dict[str, list[Batch]] = {}

    def batches(self, split: str, epoch: int = 0) -> list[Batch]:
        """Training: filtered, bucketed, shuffled from (seed, epoch). Validation/test: every
        pair, longest first; restore corpus order with `Batch.indices`."""
        _check_split_name(split)
        if split in self._eval_batches:
            return list(self._eval_batches[split])
        pairs = self.encoded[split]
        batches = [collate(rows, pairs.source, pairs.target) for rows in self._groups(split, epoch)]
        if split != "train":
            self._eval_batches[split] = batches
        return list(batches)

    def _groups(self, split: str, epoch: int) -> list[np.ndarray]:
        """The rows of each batch, in the order the batches are to run."""
        lengths = self.encoded[split].padded_lengths
        if split != "train":
            return self._pack(split, sorted_order(*lengths))
        rng = np.random.default_rng([self.seed, epoch])
        pools = pooled_orders(self.train_rows, *lengths, self.pool_size, rng)
        groups = [group for pool in pools for group in self._pack(split, pool)]
        return [groups[i] for i in rng.permutation(len(groups))]

    def _pairs_per_pool(self, bucket_pool: int) -> int:
        """Training pairs in `bucket_pool` batches of average-cost pairs (all when 0)."""
        if bucket_pool == 0:
            return len(self.train_rows)
        src, tgt = self.encoded["train"].padded_lengths
        mean_cost = float(np.mean(src[self.train_rows] + tgt[self.train_rows]))
        return max(1, round(bucket_pool * self.max_tokens / mean_cost))

    def _pack(self, split: str, order: np.ndarray) -> list[np.ndarray]:
        def too_long(row: int, cost: int) -> str:
            return (
                f"data.max_tokens={self.max_tokens} cannot hold {split} pair {row} even alone: "
                f"it needs {cost} tokens (source + EOS, target + BOS); raise data.max_tokens"
            )

        return pack(order, *self.encoded[split].padded_lengths, self.max_tokens, too_long)

    def sources(self, split: str) -> list[str]:
        _check_split_name(split)
        return list(self.raw[split]["source"])

    def references(self, split: str) -> list[str]:
        _check_split_name(split)
        return list(self.raw[split]["target"])

    def stats(self) -> dict[str, Any]:
        """Sizes, vocabulary and batch counts, e.g. for `python -m seq2seq.data` and run logs."""
        splits = {}
        for split in SPLITS:
            pairs, groups = self.encoded[split], self._groups(split, epoch=0)
            splits[split] = {
                "pairs": len(pairs.source),
                "source_tokens": int(pairs.source.lengths.sum()),
                "target_tokens": int(pairs.target.lengths.sum()),
                "batches": len(groups),
                "padding": round(_padding_fraction(groups, *pairs.padded_lengths), 4),
            }
        return {
            "src_vocab_size": self.tokenizer.src_vocab_size,
            "tgt_vocab_size": self.tokenizer.tgt_vocab_size,
            "joint_vocabulary": self.tokenizer.joint,
            "max_tokens": self.max_tokens,
            "max_length": self.max_length,
            "train_pairs_kept": len(self.train_rows),
            "train_pairs_dropped_too_long": self.dropped,
            "splits": splits,
        }


def _padding_fraction(groups: list[np.ndarray], src: np.ndarray, tgt: np.ndarray) -> float:
    """Share of the padded B × (S + T) cells that are padding, over all batches."""
    real = sum(int(src[g].sum() + tgt[g].sum()) for g in groups)
    cells = sum(len(g) * int(src[g].max() + tgt[g].max()) for g in groups)
    return 1 - real / cells if cells else 0.0


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
