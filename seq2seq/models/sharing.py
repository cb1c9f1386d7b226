"""Source-side state kept once per sentence while search follows several hypotheses of it.

Beam search keeps the K hypotheses of a sentence in consecutive rows and, every step, reorders
them only among themselves. Their encoder memory is the same for all K, so a decoder state can
hold it once per sentence (M rows for N = M·g hypotheses, hypothesis i reading row i // g) and
copy it only when sentences leave the batch, instead of copying N rows of it at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def shared_rows(owner: Tensor) -> tuple[Tensor, int]:
    """How `owner` (N,), the memory row that each new hypothesis reads, can be stored shared.

    Returns (rows, g): hypothesis i reads `rows[i // g]`. When `owner` is runs of one length g
    (beam search's K hypotheses per sentence) the rows are the runs' values; otherwise g is 1
    and every hypothesis keeps a row of its own.
    """
    if owner.numel() == 0:
        return owner, 1
    rows, counts = torch.unique_consecutive(owner, return_counts=True)
    group = int(counts[0])
    if owner.numel() == rows.numel() * group and bool((counts == group).all()):
        return rows, group
    return owner, 1


def keeps_every_row(rows: Tensor, size: int) -> bool:
    """Whether `rows` is 0, 1, ..., size - 1: every row kept, in order."""
    return rows.numel() == size and bool((rows == torch.arange(size, device=rows.device)).all())


def select_rows(tensor: Tensor, dim: int, rows: Tensor) -> Tensor:
    """`tensor.index_select(dim, rows)`, or `tensor` itself when `rows` keeps every row in order
    (the common case in beam search, where no sentence ended this step)."""
    return tensor if keeps_every_row(rows, tensor.size(dim)) else tensor.index_select(dim, rows)
