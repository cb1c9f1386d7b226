"""The unit of work that flows from batching to the models and the trainer."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """A padded batch of parallel sentences as subword ids.

    `tgt_in` is BOS + target and `tgt_out` is target + EOS, both (B, T), so that position t of
    `tgt_in` predicts position t of `tgt_out`. Padding uses the tokenizer's pad id.
    """

    src: Tensor  # (B, S)
    src_lengths: Tensor  # (B,)
    tgt_in: Tensor  # (B, T)
    tgt_out: Tensor  # (B, T)
    tgt_lengths: Tensor  # (B,) counts EOS
    indices: Tensor  # (B,) row of each sentence in its split, to restore corpus order

    @property
    def src_mask(self) -> Tensor:
        """(B, S) True on real source tokens, False on padding."""
        return length_mask(self.src_lengths, self.src.size(1))

    @property
    def tgt_mask(self) -> Tensor:
        """(B, T) True on real target positions, False on padding."""
        return length_mask(self.tgt_lengths, self.tgt_in.size(1))

    @property
    def size(self) -> int:
        return self.src.size(0)

    @property
    def num_tgt_tokens(self) -> int:
        return int(self.tgt_lengths.sum())

    @property
    def num_src_tokens(self) -> int:
        return int(self.src_lengths.sum())

    def to(self, device: torch.device | str) -> Batch:
        return replace(self, **{f: getattr(self, f).to(device) for f in _TENSOR_FIELDS})


_TENSOR_FIELDS = ("src", "src_lengths", "tgt_in", "tgt_out", "tgt_lengths", "indices")


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, max_len) boolean mask, True at positions < length."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
