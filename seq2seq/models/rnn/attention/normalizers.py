"""What turns scores into weights (`model.attention.normalizer`): softmax or a sparse mapping.

Every normaliser gives exactly 0 where the mask is False (padding, outside a local window), so
each variant's support guarantees hold whichever one is chosen.

- softmax: exp(z_s) / Σ exp(z), dense over the unmasked positions.
- sparsemax (Martins & Astudillo 2016, "From Softmax to Sparsemax: A Sparse Model of Attention
  and Multi-Label Classification"): the Euclidean projection of z onto the simplex,
  p_s = max(z_s - τ, 0); scores more than 1 below the largest get exactly 0.
- entmax15 (Peters, Niculae & Martins 2019, "Sparse Sequence-to-Sequence Models"): 1.5-entmax,
  p_s = max(z_s / 2 - τ, 0)², between the two: sparse, yet smooth where it is non-zero.

The sparse mappings and their gradients are the `entmax` package's.
"""

from __future__ import annotations

from collections.abc import Callable

import entmax
import torch
from torch import Tensor


def at_least_fp32(scores: Tensor) -> Tensor:
    """bf16/fp16 scores (under autocast) as fp32: weights normalised in bf16 sum to 1 only within
    ~0.3%, and the alignment and entropy diagnostics read them."""
    return scores.float() if scores.dtype in (torch.bfloat16, torch.float16) else scores


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis where `mask` is True; exactly 0 where it is False.

    Every row must keep at least one True position (each variant guarantees it).
    """
    # finfo.min instead of -inf: exp(min - max) is exactly 0 and never produces NaN gradients
    return scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(dim=-1)


def masked_sparsemax(scores: Tensor, mask: Tensor) -> Tensor:
    """Sparsemax over the last axis where `mask` is True; exactly 0 where it is False."""
    # finfo.min lies below any threshold τ, so masked positions get exactly 0 (tested)
    return entmax.sparsemax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)


def masked_entmax15(scores: Tensor, mask: Tensor) -> Tensor:
    """1.5-entmax over the last axis where `mask` is True; exactly 0 where it is False."""
    return entmax.entmax15(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)


NORMALIZERS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "softmax": masked_softmax,
    "sparsemax": masked_sparsemax,
    "entmax15": masked_entmax15,
}


def check_normalizer(normalizer: str) -> str:
    """`normalizer` if it names one of NORMALIZERS; a ValueError naming the key otherwise."""
    if normalizer not in NORMALIZERS:
        raise ValueError(
            f"model.attention.normalizer must be one of {sorted(NORMALIZERS)}, got {normalizer!r}"
        )
    return normalizer


def masked_normalize(scores: Tensor, mask: Tensor, normalizer: str = "softmax") -> Tensor:
    """Weights from `scores` (..., S) over the positions where `mask` is True."""
    return NORMALIZERS[normalizer](at_least_fp32(scores), mask)
