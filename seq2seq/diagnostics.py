"""Attention diagnostics that need no gold alignments, from teacher-forced attention.

Every model's `forward(..., return_attention=True)` gives (B, T, S) weights: row t is the
attention behind target token t (EOS included), column s a source token (EOS last). The
diagnostics read those rows only, so they are defined once for every model:

- `attn_entropy`: mean entropy (nats) of a target token's attention, rows renormalised (local-p's
  weights sum to less than one); 0 is one source token, log S uniform.
- `attn_monotonicity`: Spearman rank correlation between target position and the source
  position it attends to most, averaged over sentences (1: strictly in order, as between
  languages with similar word order; sentences with constant argmax are left out).
- `attn_eos_share`: mean share of a target token's attention on the source EOS.
- `attn_uncovered`: share of source tokens whose attention summed over the whole target stays
  below 0.5, a sign of under-translation (Tu et al. 2016's coverage).
- `attn_center_distance`: mean |p_t - argmax_s a_t(s)| in source positions, for attention with
  a predicted window centre p_t (`ModelOutput.attention_centers`, local attention only).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

UNCOVERED_BELOW = 0.5


class AttentionDiagnostics:
    """Accumulates the diagnostics over batches; `result()` gives the `attn_*` metrics."""

    def __init__(self) -> None:
        self.tokens = 0
        self.entropy = self.eos = 0.0
        self.source_tokens = self.uncovered = 0
        self.correlations: list[float] = []
        self.center_tokens, self.center_distance = 0, 0.0

    def add(
        self,
        weights: Tensor,
        src_lengths: Tensor,
        tgt_lengths: Tensor,
        centers: Tensor | None = None,
    ) -> None:
        """weights (B, T, S) of a batch, true lengths (B,) counting EOS, centres (B, T)."""
        weights = weights.detach().float()
        src_lengths, tgt_lengths = src_lengths.to(weights.device), tgt_lengths.to(weights.device)
        rows = _valid_rows(tgt_lengths, weights.size(1))  # (B, T)
        shares = _renormalised(weights)
        entropy = -(shares * shares.clamp_min(1e-12).log()).sum(-1)  # (B, T)
        eos = shares.gather(2, (src_lengths - 1).view(-1, 1, 1).expand(-1, weights.size(1), 1))
        self.tokens += int(rows.sum())
        self.entropy += float(entropy[rows].sum())
        self.eos += float(eos.squeeze(-1)[rows].sum())
        received = (weights * rows.unsqueeze(-1)).sum(1)  # (B, S)
        columns = _valid_rows(src_lengths, weights.size(2))
        self.source_tokens += int(columns.sum())
        self.uncovered += int(((received < UNCOVERED_BELOW) & columns).sum())
        argmax = weights.argmax(-1)  # (B, T)
        for b in range(weights.size(0)):
            self.correlations.append(spearman(argmax[b, : int(tgt_lengths[b])].cpu().numpy()))
        if centers is not None:
            distance = (centers.detach().float() - argmax.float()).abs()
            self.center_tokens += int(rows.sum())
            self.center_distance += float(distance[rows].sum())

    def result(self) -> dict[str, float]:
        correlations = [c for c in self.correlations if not math.isnan(c)]
        metrics = {
            "attn_entropy": self.entropy / self.tokens if self.tokens else math.nan,
            "attn_monotonicity": float(np.mean(correlations)) if correlations else math.nan,
            "attn_eos_share": self.eos / self.tokens if self.tokens else math.nan,
            "attn_uncovered": self.uncovered / self.source_tokens
            if self.source_tokens
            else math.nan,
        }
        if self.center_tokens:
            metrics["attn_center_distance"] = self.center_distance / self.center_tokens
        return metrics


def spearman(positions: np.ndarray) -> float:
    """Spearman's rho between 0, 1, ..., n - 1 and `positions` (ties get their mean rank); NaN
    when it is undefined (fewer than two tokens, or one position throughout)."""
    if len(positions) < 2:
        return math.nan
    ranks = _mean_ranks(np.asarray(positions, dtype=np.float64))
    order = np.arange(len(positions), dtype=np.float64)
    if ranks.std() == 0:
        return math.nan
    return float(np.corrcoef(order, ranks)[0, 1])


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of each distinct value's last occurrence (1-based)
    return (last - (counts - 1) / 2)[inverse]


def _valid_rows(lengths: Tensor, width: int) -> Tensor:
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def _renormalised(weights: Tensor) -> Tensor:
    totals = weights.sum(-1, keepdim=True)
    return torch.where(totals > 0, weights / totals.clamp_min(1e-12), weights)
