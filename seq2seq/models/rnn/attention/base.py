"""The interface every attention variant shares, and the one place that masks, normalises and sums.

Shape letters as in the table of `seq2seq.models` (C encoder output size, Q query size, A size
of the projected keys, W = 2w + 1 local window).
A variant defines its *score*; this module turns scores into weights and a context vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.normalizers import check_normalizer, masked_normalize


@dataclass(frozen=True)
class EncoderMemory:
    """What the decoder attends over, built once per batch; it rides in the decoder state.

    `keys` is the attention's projection of `values` (`Attention.project_keys`), computed once
    per batch rather than once per target step, and passed in rather than cached on the module.
    """

    values: Tensor  # (B, S, C) encoder outputs h_j / h̄_s
    keys: Tensor  # (B, S, A) projected keys
    mask: Tensor  # (B, S) True on real source tokens
    lengths: Tensor  # (B,) true source lengths

    def reorder(self, indices: Tensor) -> EncoderMemory:
        """The memory of sentences `indices` (B',), in that order (beam search)."""
        return EncoderMemory(
            values=self.values.index_select(0, indices),
            keys=self.keys.index_select(0, indices),
            mask=self.mask.index_select(0, indices),
            lengths=self.lengths.index_select(0, indices),
        )


@dataclass(frozen=True)
class AttentionOutput:
    """Context vectors and the weights that made them.

    Global variants return dense weights (B, T, S) and no `window`; local variants return the
    weights of their window only (B, T, W) with the source position of each in `window`, so
    they never materialise a (T, S) tensor unless `dense_weights` is asked for.
    """

    context: Tensor  # (B, T, C)
    weights: Tensor  # (B, T, S), or (B, T, W) over `window`
    window: Tensor | None = None  # (B, T, W) source position of each local weight
    state: Tensor | None = None  # the attention's own state after these T steps (coverage)
    center: Tensor | None = None  # (B, T) p_t, the window's centre (local variants)

    def dense_weights(self, source_length: int) -> Tensor:
        """(B, T, S) weights over every source position, zero outside a local window."""
        if self.window is None:
            return self.weights
        return scatter_window(self.weights, self.window, source_length)


def scatter_window(weights: Tensor, window: Tensor, source_length: int) -> Tensor:
    """Window weights (B, T, W) at source positions `window` (B, T, W) as (B, T, S) weights."""
    dense = weights.new_zeros(*weights.shape[:2], source_length)
    # scatter_add, not scatter: clipped window slots share a position and carry weight 0
    return dense.scatter_add_(2, window, weights)


class Attention(nn.Module):
    """Global attention: score every source position, normalise over the real ones, weighted sum.

    Subclasses define `score` and, if their score uses projected keys, `project_keys`. They are
    built with the decoder's `query_size` and the encoder's `key_size`, which the model supplies
    when it completes the partial from `configs/model/attention/*.yaml`, and the `normalizer`
    that turns scores into weights (seq2seq/models/rnn/attention/normalizers.py).
    A variant that remembers its past weights (coverage) keeps them in a state it creates in
    `initial_state`, takes back in `forward` and returns in `AttentionOutput.state`; the decoder
    state carries it and reorders it with the hypotheses.

    Each variant also states its paper's equation as plain code, one query and one source
    position at a time (`reference_score`, or `reference_weights` for any other alignment, and
    `reference_context` where the context is not Σ_s a_t(s) h̄_s), which
    tests/models/test_attention_equations.py compares with `forward`.
    """

    normalised: bool = True  # weights sum to one over each sentence's real positions
    # the context is sum_s a_t(s) values_s with weights that never read the values, so a linear
    # map of the context equals the weighted sum of mapped values (the RNN decoders' fast path)
    context_is_weighted_values: bool = True

    def __init__(self, *, query_size: int, key_size: int, normalizer: str = "softmax") -> None:
        super().__init__()
        self.query_size = query_size
        self.key_size = key_size
        self.normalizer = check_normalizer(normalizer)

    def project_keys(self, values: Tensor) -> Tensor:
        """Keys as `score` wants them (B, S, A), computed once per batch."""
        return values

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised scores (N, T, S) of queries (N, T, Q) against keys (N, S, A)."""
        raise NotImplementedError

    def initial_state(self, memory: EncoderMemory) -> Tensor | None:
        """The attention's own state before the first target step (B, ...); None: it has none."""
        return None

    def normalize(self, scores: Tensor, mask: Tensor) -> Tensor:
        """Weights from scores (..., S), exactly 0 where `mask` is False."""
        return masked_normalize(scores, mask, self.normalizer)

    def forward(
        self, query: Tensor, memory: EncoderMemory, step: int = 0, state: Tensor | None = None
    ) -> AttentionOutput:
        """Attend with queries (B, T, Q), the t-th of which is target position `step + t`."""
        weights = self.normalize(self.score(query, memory.keys), memory.mask.unsqueeze(1))
        return AttentionOutput(context=torch.bmm(weights, memory.values), weights=weights)

    def reference_score(self, h_t: Tensor, h_s: Tensor) -> Tensor:
        """score(h_t, h̄_s) of one query (Q,) and one source position (K,) in float64, written
        from the paper's equation (the references of seq2seq/models/rnn/attention/equations.py)."""
        raise NotImplementedError(
            f"{type(self).__name__} ({type(self).__module__}) has no reference equation: give it "
            "reference_score(h_t, h_s) (a global score of one query and one source position) or, "
            "for any other alignment, reference_weights(query, values, lengths, step), written "
            "from its paper's equation (docs/attention.md, 'Adding a variant')"
        )

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """The weights (B, T, S) by the paper's equation in float64: here a global score,
        normalised over each sentence (`equations.global_weights`)."""
        return equations.global_weights(
            self.reference_score, self.normalizer, query, values, lengths
        )

    def reference_context(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """c_t = Σ_s a_t(s) h̄_s (B, T, K) over `reference_weights`."""
        weights = self.reference_weights(query, values, lengths, step)
        return torch.einsum("bts,bsk->btk", weights, values)
