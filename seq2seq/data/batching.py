"""Length-bucketed batches under a token budget.

A batch of B pairs costs B × (S + T): S is its longest source including EOS and T its longest
target including BOS (tgt_in) / EOS (tgt_out), i.e. the padded sizes the model actually runs on.
Pairs are sorted by length so padding is small, cut greedily into batches of cost ≤ max_tokens,
and, for training, the pools that are sorted, the tie-breaking among equal lengths and the
batch order are drawn from (seed, epoch): the same pair of numbers always gives the same
batches in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from seq2seq.data.batch import Batch
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

_ENCODE_CHUNK = 100_000  # lines per sentencepiece call: bounds the Python lists alive at once


@dataclass(frozen=True)
class Ragged:
    """Variable-length id sequences stored flat, so millions of sentences fit in memory."""

    ids: np.ndarray  # (total tokens,) int32
    offsets: np.ndarray  # (N + 1,) int64; sequence i is ids[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_lists(cls, chunks: Iterable[list[list[int]]]) -> Ragged:
        """From sequences arriving in chunks; each chunk is flattened at once, so no Python
        object per sentence outlives its chunk."""
        flat, lengths = [np.zeros(0, dtype=np.int32)], [np.zeros(0, dtype=np.int64)]
        for chunk in chunks:
            lengths.append(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)))
            flat.append(np.fromiter(chain.from_iterable(chunk), dtype=np.int32))
        all_lengths = np.concatenate(lengths)
        offsets = np.zeros(len(all_lengths) + 1, dtype=np.int64)
        np.cumsum(all_lengths, out=offsets[1:])
        return cls(np.concatenate(flat), offsets)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self.ids[self.offsets[i] : self.offsets[i + 1]].tolist()


def encode_texts(encode: Callable[[list[str]], list[list[int]]], texts: Sequence[str]) -> Ragged:
    chunks = (
        encode(list(texts[i : i + _ENCODE_CHUNK])) for i in range(0, len(texts), _ENCODE_CHUNK)
    )
    return Ragged.from_lists(chunks)


def pack(
    order: np.ndarray,
    src_lengths: np.ndarray,
    tgt_lengths: np.ndarray,
    max_tokens: int,
    too_long: Callable[[int, int], str],
) -> list[np.ndarray]:
    """Cut `order` greedily into consecutive runs of cost B × (max S + max T) ≤ max_tokens.

    Lengths include the specials. `too_long(row, cost)` words the error for a pair that does
    not fit even alone.
    """
    bounds = [0]
    max_s = max_t = 0
    for pos, (s, t) in enumerate(zip(src_lengths[order].tolist(), tgt_lengths[order].tolist())):
        if s + t > max_tokens:
            raise ValueError(too_long(int(order[pos]), s + t))
        max_s, max_t = max(max_s, s), max(max_t, t)
        if (pos - bounds[-1] + 1) * (max_s + max_t) > max_tokens:
            bounds.append(pos)
            max_s, max_t = s, t
    bounds.append(len(order))
    return [order[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def pooled_orders(
    rows: np.ndarray,
    src_lengths: np.ndarray,
    tgt_lengths: np.ndarray,
    pool_size: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """`rows` in random pools of `pool_size` pairs, each pool longest first (see
    `_longest_first`), equal lengths in random order.

    Batches cut from one pool are tightly bucketed; drawing the pools anew each epoch makes
    a pair meet different partners, while one pool of the whole corpus (pool_size ≥ len(rows))
    pads least but groups the same lengths together every epoch.
    """
    shuffled = rng.permutation(rows)
    pools = [shuffled[i : i + pool_size] for i in range(0, len(shuffled), pool_size)]
    return [pool[_longest_first(src_lengths[pool], tgt_lengths[pool])] for pool in pools]


def _longest_first(src_lengths: np.ndarray, tgt_lengths: np.ndarray) -> np.ndarray:
    """The order that sorts pairs by their longer side, then source, then target, longest first.

    Both sides' maxima set a batch's cost, so neighbours should be alike on both: in a small
    pool, sorting by source first leaves the targets of one batch far apart. lexsort is
    stable: equal lengths keep the order they came in.
    """
    longer = np.maximum(src_lengths, tgt_lengths)
    return np.lexsort((-tgt_lengths, -src_lengths, -longer))


def sorted_order(src_lengths: np.ndarray, tgt_lengths: np.ndarray) -> np.ndarray:
    """All rows longest first; the biggest batch runs first, so memory errors surface early."""
    return np.lexsort((-tgt_lengths, -src_lengths))


def collate(rows: np.ndarray, source: Ragged, target: Ragged | None) -> Batch:
    """src = x + EOS, tgt_in = BOS + y, tgt_out = y + EOS; with no target both are (B, 0)."""
    src, src_lengths = _padded([source[i] + [EOS_ID] for i in rows])
    if target is None:
        tgt_in, tgt_lengths = _padded([[] for _ in rows])
        tgt_out = tgt_in
    else:
        tgt_in, tgt_lengths = _padded([[BOS_ID] + target[i] for i in rows])
        tgt_out, _ = _padded([target[i] + [EOS_ID] for i in rows])
    indices = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    return Batch(src, src_lengths, tgt_in, tgt_out, tgt_lengths, indices)


def _padded(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [len(seq) for seq in seqs]
    width = max(lengths, default=0)
    rows = [seq + [PAD_ID] * (width - len(seq)) for seq in seqs]
    return torch.tensor(rows, dtype=torch.long).view(len(seqs), width), torch.tensor(lengths)


def batch_sources(tokenizer: Tokenizer, sentences: Sequence[str], max_tokens: int) -> list[Batch]:
    """Batches of source sentences alone, for translation: cost B × S ≤ max_tokens, longest
    first, targets empty (B, 0). `Batch.indices` gives each sentence's position in `sentences`.
    """
    if not (isinstance(max_tokens, int) and max_tokens > 0):
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    source = encode_texts(tokenizer.encode_sources, sentences)
    src_lengths = source.lengths + 1  # EOS
    no_target = np.zeros_like(src_lengths)
    groups = pack(
        sorted_order(src_lengths, no_target),
        src_lengths,
        no_target,
        max_tokens,
        lambda row, cost: (
            f"max_tokens={max_tokens} cannot hold sentence {row} ({cost} subword tokens with "
            "EOS); raise max_tokens"
        ),
    )
    return [collate(rows, source, None) for rows in groups]
