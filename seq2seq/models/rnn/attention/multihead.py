"""Multi-head attention over the RNN's states: h content scores, one context per head."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.base import Attention, AttentionOutput, EncoderMemory
from seq2seq.models.rnn.attention.content import content_score


class MultiHeadAttention(Attention):
    """A content score (`dot`, `general` or `concat`, Luong et al. 2015 §3.1) in h heads, as the
    Transformer's multi-head attention (Vaswani et al. 2017, "Attention Is All You Need", §3.2.2)
    but over the RNN's decoder state and encoder outputs:

        a_t^i = normalize_s(score(W_q^i h_t, W_k^i h̄_s))        i = 1..h, W_q^i, W_k^i to Q / h
        c_t   = W_o [Σ_s a_t^1(s) h̄_s; ...; Σ_s a_t^h(s) h̄_s]  W_o: h·C -> C

    Each head's context is over the encoder outputs themselves (no value projection); the score
    module is shared by the heads, which differ by their projections (with `dot`, each head is
    exactly a Transformer head without the 1/sqrt(d) scale). `weights` reports the mean of the
    heads' weights, a distribution with the same zeros. With `heads=1` there are no projections
    and this is exactly the plain score's attention (tested bit for bit).
    """

    def __init__(
        self,
        *,
        query_size: int,
        key_size: int,
        score: str = "dot",
        heads: int = 4,
        normalizer: str = "softmax",
    ) -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        if heads < 1 or query_size % heads:
            raise ValueError(
                f"model.attention.heads must be >= 1 and divide the decoder hidden size "
                f"({query_size}), got {heads}"
            )
        self.heads = heads
        self.context_is_weighted_values = heads == 1  # W_o mixes the heads' contexts
        if heads == 1:
            self.content = content_score(score, query_size=query_size, key_size=key_size)
            return
        head_size = query_size // heads
        self.query_heads = nn.Linear(query_size, query_size, bias=False)  # W_q^1..h stacked
        self.key_heads = nn.Linear(key_size, query_size, bias=False)  # W_k^1..h stacked
        self.content = content_score(score, query_size=head_size, key_size=head_size)
        self.output_layer = nn.Linear(heads * key_size, key_size, bias=False)  # W_o

    def _split(self, states: Tensor) -> Tensor:
        """(B, S, h·d) -> (B·h, S, d): one batch row per sentence and head."""
        batch, length, _ = states.shape
        return states.view(batch, length, self.heads, -1).transpose(1, 2).flatten(0, 1)

    def project_keys(self, values: Tensor) -> Tensor:
        if self.heads == 1:
            return self.content.project_keys(values)
        keys = self.content.project_keys(self._split(self.key_heads(values)))  # (B·h, S, A)
        batch, length = values.shape[:2]
        # back to one row per sentence, so beam search reorders keys like every other memory
        return keys.view(batch, self.heads, length, -1).transpose(1, 2).flatten(2)  # (B, S, h·A)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """Scores (N, h, T, S) of queries (N, T, Q) against keys (N, S, h·A), one per head
        ((N, T, S) with one head)."""
        if self.heads == 1:
            return self.content.score(query, keys)
        scores = self.content.score(self._split(self.query_heads(query)), self._split(keys))
        return scores.view(query.size(0), self.heads, *scores.shape[1:])

    def forward(
        self, query: Tensor, memory: EncoderMemory, step: int = 0, state: Tensor | None = None
    ) -> AttentionOutput:
        if self.heads == 1:
            return super().forward(query, memory, step)
        weights = self.normalize(self.score(query, memory.keys), memory.mask[:, None, None])
        contexts = weights @ memory.values.unsqueeze(1)  # (B, h, T, C)
        context = self.output_layer(contexts.transpose(1, 2).flatten(2))  # (B, T, C)
        return AttentionOutput(context=context, weights=weights.mean(dim=1))

    def reference_head_score(self, i: int, h_t: Tensor, h_s: Tensor) -> Tensor:
        """Head i's score(q_i, k_i), q_i = W_q^i h_t, k_i = W_k^i h̄_s, W^i the i-th block of
        Q / h rows (no projections with one head)."""
        if self.heads == 1:
            return self.content.reference_score(h_t, h_s)
        q_i = (equations.weight(self.query_heads) @ h_t).chunk(self.heads)[i]
        k_i = (equations.weight(self.key_heads) @ h_s).chunk(self.heads)[i]
        return self.content.reference_score(q_i, k_i)

    def reference_heads(self, query: Tensor, values: Tensor, lengths: Tensor) -> Tensor:
        """a_t^i(s) = normalize_s(score(q_i, k_i)) of every head (B, h, T, S)."""
        heads = [
            equations.global_weights(
                partial(self.reference_head_score, i), self.normalizer, query, values, lengths
            )
            for i in range(self.heads)
        ]
        return torch.stack(heads, dim=1)

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """The weights reported: the mean of the heads' a_t^i."""
        return self.reference_heads(query, values, lengths).mean(dim=1)

    def reference_context(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """c_t = W_o [Σ_s a_t^1(s) h̄_s; ...; Σ_s a_t^h(s) h̄_s] (B, T, K); with one head there is
        no W_o and c_t = Σ_s a_t(s) h̄_s."""
        if self.heads == 1:
            return super().reference_context(query, values, lengths, step)
        heads = self.reference_heads(query, values, lengths)
        contexts = torch.einsum("bhts,bsk->bthk", heads, values).flatten(2)  # (B, T, h·K)
        return contexts @ equations.weight(self.output_layer).T
