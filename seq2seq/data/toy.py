"""Synthetic tasks generated on the fly: fully offline and learnable in seconds, for smoke runs.

A sentence is `min_length`..`max_length` symbols (letters `a`, `b`, ...) separated by spaces, so
the word-level tokenizer (`configs/tokenizer/word.yaml`) makes each symbol one token. All
sentences of a data set are distinct, so validation and test never overlap training. The data
set depends only on its own `seed`, not on the training seed, so runs with different training
seeds learn the same task.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

from datasets import DatasetDict

from seq2seq.data.sources import pairs


class ToyTask:
    """Random symbol sequences; the target is `transform(source)`."""

    def __init__(
        self,
        alphabet_size: int = 20,
        min_length: int = 3,
        max_length: int = 15,
        train_size: int = 10_000,
        validation_size: int = 500,
        test_size: int = 500,
        seed: int = 0,
    ) -> None:
        if not 2 <= alphabet_size <= len(string.ascii_lowercase):
            raise ValueError(f"data.source.alphabet_size must be in [2, 26], got {alphabet_size}")
        if not 1 <= min_length <= max_length:
            raise ValueError(
                "data.source.min_length and data.source.max_length must satisfy "
                f"1 <= min_length <= max_length, got {min_length} and {max_length}"
            )
        self.alphabet = list(string.ascii_lowercase[:alphabet_size])
        self.min_length, self.max_length = min_length, max_length
        self.sizes = {"train": train_size, "validation": validation_size, "test": test_size}
        for split, size in self.sizes.items():
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"data.source.{split}_size must be a positive integer, got {size}")
        capacity = sum(alphabet_size**n for n in range(min_length, max_length + 1))
        if capacity < sum(self.sizes.values()):
            raise ValueError(
                f"only {capacity} distinct sentences exist for data.source.alphabet_size="
                f"{alphabet_size} and lengths {min_length}..{max_length}, fewer than the "
                f"{sum(self.sizes.values())} requested"
            )
        self.seed = seed

    def transform(self, symbols: list[str]) -> list[str]:
        raise NotImplementedError

    def load(self, cache_dir: Path | None = None) -> DatasetDict:
        sentences = self._distinct_sentences(sum(self.sizes.values()))
        splits, start = {}, 0
        for split, size in self.sizes.items():
            chunk = sentences[start : start + size]
            targets = [" ".join(self.transform(s.split(" "))) for s in chunk]
            splits[split] = pairs(chunk, targets)
            start += size
        return DatasetDict(splits)

    def _distinct_sentences(self, count: int) -> list[str]:
        rng = random.Random(self.seed)
        seen: dict[str, None] = {}  # insertion-ordered set: the order is part of the data set
        while len(seen) < count:
            length = rng.randint(self.min_length, self.max_length)
            seen.setdefault(" ".join(rng.choices(self.alphabet, k=length)))
        return list(seen)


class CopyTask(ToyTask):
    """Target = source: tests that attention can learn the identity alignment."""

    def transform(self, symbols: list[str]) -> list[str]:
        return list(symbols)


class ReverseTask(ToyTask):
    """Target = source reversed: the alignment is the anti-diagonal, far from the diagonal
    prior of a plain encoder-decoder, so it separates attention variants quickly."""

    def transform(self, symbols: list[str]) -> list[str]:
        return symbols[::-1]
