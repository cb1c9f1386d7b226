"""Coverage attention: the score sees how much each source word has been attended so far."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.base import AttentionOutput, EncoderMemory
from seq2seq.models.rnn.attention.content import BahdanauAttention
from seq2seq.models.rnn.attention.equations import weight


class BahdanauCoverageAttention(BahdanauAttention):
    """Bahdanau's additive score with the coverage feature of See, Liu & Manning (2017), "Get To
    The Point: Summarization with Pointer-Generator Networks", eq. 11, the simple form of Tu et
    al. (2016)'s coverage ("Modeling Coverage for Neural Machine Translation"):

        c_t(s) = Σ_{t' < t} a_{t'}(s)                              (coverage, 0 at t = 0)
        e_t(s) = v_a^T tanh(W_a s_{t-1} + U_a h_s + w_c c_t(s))

    The coverage vector is the attention's state (B, S): the decoder state carries it and beam
    search reorders it with the hypotheses. As in Bahdanau's score there is no bias (See et al.
    add b_attn), and See et al.'s coverage loss Σ_s min(a_t(s), c_t(s)) is not added to the
    training objective: the score alone learns to use the feature.
    """

    def __init__(self, *, query_size: int, key_size: int, normalizer: str = "softmax") -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        self.coverage_layer = nn.Linear(1, query_size, bias=False)  # w_c

    def initial_state(self, memory: EncoderMemory) -> Tensor:
        # at least float32 whatever the autocast: it sums weights over many steps
        dtype = torch.promote_types(memory.values.dtype, torch.float32)
        return torch.zeros(memory.mask.shape, dtype=dtype, device=memory.mask.device)  # (B, S)

    def forward(
        self, query: Tensor, memory: EncoderMemory, step: int = 0, state: Tensor | None = None
    ) -> AttentionOutput:
        coverage = self.initial_state(memory) if state is None else state
        mask = memory.mask.unsqueeze(1)
        weights = []
        # each step's coverage holds the previous steps' weights, so T queries run in turn
        for q_t in query.split(1, dim=1):
            keys = memory.keys + self.coverage_layer(coverage.unsqueeze(-1))  # (B, S, A)
            a_t = self.normalize(self.score(q_t, keys), mask)  # (B, 1, S)
            coverage = coverage + a_t.squeeze(1)
            weights.append(a_t)
        weights = torch.cat(weights, dim=1)  # (B, T, S)
        context = torch.bmm(weights, memory.values)
        return AttentionOutput(context=context, weights=weights, state=coverage)

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """See et al. (2017) eq. 11: e_t(s) = v_a^T tanh(W_a s_{t-1} + U_a h_s + w_c c_t(s)) with
        c_t(s) = Σ_{t' < t} a_{t'}(s), 0 before the first of these queries."""
        w_a, u_a, v_a = (
            weight(self.query_layer),
            weight(self.key_layer),
            weight(self.energy_layer)[0],
        )
        w_c = weight(self.coverage_layer)[:, 0]
        weights = equations.zero_weights(query, values)
        for b, length in enumerate(lengths.tolist()):
            coverage = [0.0] * length
            for t in range(query.size(1)):
                scores = [
                    v_a @ torch.tanh(w_a @ query[b, t] + u_a @ values[b, s] + w_c * coverage[s])
                    for s in range(length)
                ]
                for s, a in enumerate(equations.normalize(self.normalizer, scores)):
                    weights[b, t, s] = a
                    coverage[s] += float(a)
        return weights
