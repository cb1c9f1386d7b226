"""Luong's local attention: score only a window of 2w + 1 source positions around p_t.

The window is gathered, not masked out of a full (T, S) score matrix, so one target step costs
O(w) scores whatever the source length; a source of at most twice the window is scored whole and
the window's scores picked (the same O(w), from fewer and larger products).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.base import (
    Attention,
    AttentionOutput,
    EncoderMemory,
    scatter_window,
)
from seq2seq.models.rnn.attention.content import content_score


class LocalAttention(Attention):
    """Local attention of Luong et al. (2015), section 3.2: the content score (`dot`, `general`
    or `concat`) over the source positions s in [p_t - w, p_t + w] that lie in the sentence (the
    paper calls the half-width w D, which here is the Transformer width).

    Subclasses say where the window is centred (`center`) and may reweight it (`reweight`).
    """

    def __init__(
        self,
        *,
        query_size: int,
        key_size: int,
        score: str = "general",
        half_width: int = 10,
        normalizer: str = "softmax",
    ) -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        self.content = content_score(score, query_size=query_size, key_size=key_size)
        self.half_width = check_half_width(half_width)
        self.whole_short_sources = True  # forward may take _whole_source (tests switch it off)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.content.project_keys(values)

    def center(self, query: Tensor, memory: EncoderMemory, step: int) -> Tensor:
        """p_t (B, T) in float32, for queries (B, T, Q) at target positions step, step + 1, ..."""
        raise NotImplementedError

    def reweight(self, weights: Tensor, positions: Tensor, center: Tensor) -> Tensor:
        """Hook to modify the window's weights (B, T, W) given their positions and p_t."""
        return weights

    def forward(
        self, query: Tensor, memory: EncoderMemory, step: int = 0, state: Tensor | None = None
    ) -> AttentionOutput:
        batch, steps, _ = query.shape
        center = self.center(query, memory, step)
        positions, valid = window_positions(center, self.half_width, memory.lengths)
        index = clip_to_sentence(positions, memory.lengths)  # (B, T, W)
        width = index.size(-1)
        if self.whole_short_sources and memory.keys.size(1) <= 2 * width:
            return self._whole_source(query, memory, center, positions, valid, index)
        keys = gather_window(memory.keys, index)  # (B*T, W, A)
        scores = self.content.score(query.reshape(batch * steps, 1, -1), keys)
        weights = self.normalize(scores.view(batch, steps, width), valid)
        weights = self.reweight(weights, positions, center)  # (B, T, W)
        # the dot score's keys are the values themselves: gather them once
        same = memory.keys is memory.values
        values = keys if same else gather_window(memory.values, index)  # (B*T, W, C)
        context = torch.bmm(weights.view(batch * steps, 1, width), values).view(batch, steps, -1)
        return AttentionOutput(context=context, weights=weights, window=index, center=center)

    def _whole_source(  # noqa: PLR0913 - forward's window, passed on
        self,
        query: Tensor,
        memory: EncoderMemory,
        center: Tensor,
        positions: Tensor,
        valid: Tensor,
        index: Tensor,
    ) -> AttentionOutput:
        """`forward` for a source no longer than twice the window (nearly all of Multi30k's,
        so still O(w) scores a step): the content score of every source position, of which the
        window's are picked, and the context as the window's weights scattered over the source
        times the values, in place of gathering each query's window of keys and values (the
        same numbers from fewer and larger products)."""
        scores = self.content.score(query, memory.keys).gather(2, index)  # (B, T, W)
        weights = self.reweight(self.normalize(scores, valid), positions, center)
        dense = scatter_window(weights, index, memory.values.size(1))  # (B, T, S)
        context = torch.bmm(dense, memory.values)
        return AttentionOutput(context=context, weights=weights, window=index, center=center)

    def reference_center(self, h_t: Tensor, length: int, t: int) -> float:
        """p_t of one query h_t (Q,) at target position t in a sentence of `length`."""
        raise NotImplementedError(
            f"{type(self).__name__} ({type(self).__module__}) has no reference equation for its "
            "centre: give it reference_center(h_t, length, t), p_t by its paper's equation"
        )

    def reference_prior(self, s: int, center: float) -> float:
        """What the window's weight of position s is multiplied by (1: nothing)."""
        return 1.0

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """Luong (2015) §3.2: a_t(s) = align(h_t, h̄_s) · prior(s) over the s in
        [p_t - D, p_t + D] inside the sentence, align the content score normalised over that
        window; 0 elsewhere."""
        weights = equations.zero_weights(query, values)
        for b, length in enumerate(lengths.tolist()):
            for t in range(query.size(1)):
                p_t = self.reference_center(query[b, t], length, step + t)
                window = equations.window(p_t, self.half_width, length)
                scores = [self.content.reference_score(query[b, t], values[b, s]) for s in window]
                aligned = equations.normalize(self.normalizer, scores)
                for s, a in zip(window, aligned, strict=True):
                    weights[b, t, s] = a * self.reference_prior(s, p_t)
        return weights


class LuongLocalMAttention(LocalAttention):
    """Local-m (monotonic alignment), Luong et al. (2015), section 3.2: p_t = t.

    A target longer than its source would push the window past the sentence, so p_t stops at the
    last source position: p_t = min(t, S - 1) with S the sentence's true length.
    """

    def center(self, query: Tensor, memory: EncoderMemory, step: int) -> Tensor:
        targets = torch.arange(step, step + query.size(1), device=query.device)  # (T,)
        last = (memory.lengths - 1).unsqueeze(1)  # (B, 1)
        return torch.minimum(targets.unsqueeze(0), last).float()  # (B, T)

    def reference_center(self, h_t: Tensor, length: int, t: int) -> float:
        """p_t = t, held at the sentence's last position S - 1."""
        return float(min(t, length - 1))


class LuongLocalPAttention(LocalAttention):
    """Local-p (predictive alignment), Luong et al. (2015), section 3.2:

        p_t = S · sigmoid(v_p^T tanh(W_p h_t))
        a_t(s) = align(h_t, h̄_s) · exp(-(s - p_t)^2 / (2σ^2)),   σ = w / 2

    with S the true length of each sentence (not the padded length) and align the softmax of
    the content score over the window. As in the paper the Gaussian is not renormalised, so the
    weights sum to at most 1; p_t learns through the Gaussian only.
    """

    normalised = False

    def __init__(
        self,
        *,
        query_size: int,
        key_size: int,
        score: str = "general",
        half_width: int = 10,
        normalizer: str = "softmax",
    ) -> None:
        super().__init__(
            query_size=query_size,
            key_size=key_size,
            score=score,
            half_width=half_width,
            normalizer=normalizer,
        )
        self.position_layer = nn.Linear(query_size, query_size, bias=False)  # W_p
        self.position_energy = nn.Linear(query_size, 1, bias=False)  # v_p

    def center(self, query: Tensor, memory: EncoderMemory, step: int) -> Tensor:
        energy = self.position_energy(torch.tanh(self.position_layer(query))).squeeze(-1)
        # float32: a bf16 p_t would be off by whole positions in long sentences
        return memory.lengths.unsqueeze(1) * torch.sigmoid(energy.float())  # (B, T)

    def reweight(self, weights: Tensor, positions: Tensor, center: Tensor) -> Tensor:
        sigma = self.half_width / 2
        gaussian = torch.exp(-((positions - center.unsqueeze(-1)) ** 2) / (2 * sigma**2))
        return weights * gaussian

    def reference_center(self, h_t: Tensor, length: int, t: int) -> float:
        """Luong (2015) eq. (9): p_t = S · sigmoid(v_p^T tanh(W_p h_t)), S the true length."""
        w_p, v_p = equations.weight(self.position_layer), equations.weight(self.position_energy)[0]
        return length * float(torch.sigmoid(v_p @ torch.tanh(w_p @ h_t)))

    def reference_prior(self, s: int, center: float) -> float:
        """Luong (2015) eq. (10): exp(-(s - p_t)^2 / (2σ^2)), σ = D / 2, not renormalised."""
        return math.exp(-((s - center) ** 2) / (2 * (self.half_width / 2) ** 2))


def check_half_width(half_width: int) -> int:
    """`half_width` if it is a usable w; a ValueError naming the key otherwise."""
    if half_width < 1:
        raise ValueError(f"model.attention.half_width (w) must be >= 1, got {half_width}")
    return half_width


def window_positions(center: Tensor, half_width: int, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Source positions of the windows [p_t - w, p_t + w] and which of them are usable.

    Returns positions (B, T, 2w + 1) as floats, starting at ceil(p_t - w), and a mask that is
    True where the position lies both in the window (<= p_t + w, which drops the last slot when
    p_t is fractional) and in the sentence (0 <= s < S).
    """
    offsets = torch.arange(2 * half_width + 1, device=center.device, dtype=center.dtype)
    positions = torch.ceil(center - half_width).unsqueeze(-1) + offsets  # (B, T, W)
    valid = (
        (positions >= 0)
        & (positions < lengths.view(-1, 1, 1))
        & (positions <= center.unsqueeze(-1) + half_width)
    )
    return positions, valid


def clip_to_sentence(positions: Tensor, lengths: Tensor) -> Tensor:
    """Integer positions moved into [0, S - 1] so they can be gathered (their weight is 0)."""
    last = (lengths - 1).view(-1, 1, 1)
    return torch.minimum(positions.long().clamp(min=0), last)


def gather_window(source: Tensor, index: Tensor) -> Tensor:
    """Rows `index` (B, T, W) of `source` (B, S, A), as (B*T, W, A): O(T·W), never O(T·S)."""
    batch, length, size = source.shape
    offsets = torch.arange(batch, device=index.device).view(-1, 1, 1) * length
    flat = (index + offsets).view(-1)  # (B*T*W,)
    return source.reshape(batch * length, size).index_select(0, flat).view(-1, index.size(-1), size)
