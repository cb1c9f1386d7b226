"""Top-k predictive attention: attend to the k most relevant source positions, wherever they are.

Like local attention it normalises and sums over k = 2w + 1 positions only; unlike it the k need
not be contiguous. Choosing them needs one score per source position (O(T·S) numbers,
transiently); everything after the choice is O(T·k), like the local window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.base import Attention, AttentionOutput, EncoderMemory
from seq2seq.models.rnn.attention.content import content_score
from seq2seq.models.rnn.attention.local import check_half_width, gather_window

# the scores that give one number per (t, s) pair without a (T, S, A) intermediate: concat
# would build one to choose the k positions
SELECTABLE_SCORES = ("dot", "general")


class LuongTopKAttention(Attention):
    """Completely predictive local attention, adapted to translation (docs/attention.md says
    what follows the write-up of issue 17 and what is adapted). The predictive-alignment network
    of Luong et al. (2015) §3.2 is applied to every source state, and the content score makes
    the choice depend on the decoder:

        π(s)   = sigmoid(v_p^T tanh(W_p h̄_s))                   relevance of h̄_s (per batch)
        K_t    = top-k_s [score(h_t, h̄_s) + log π(s)]           k = 2w + 1 real positions
        a_t(s) = normalize_{s ∈ K_t}(score(h_t, h̄_s)) · π(s)    for s in K_t, 0 elsewhere

    K_t is the k positions that softmax(score) · π would weigh most. As local-p's Gaussian, π is
    not renormalised (weights sum to at most 1) and it learns through the kept weights only: the
    choice of K_t passes no gradient, so W_p and v_p learn how much each kept position counts,
    which in turn moves it into or out of the top k.
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
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        self.content = content_score(
            score, query_size=query_size, key_size=key_size, choices=SELECTABLE_SCORES
        )
        self.half_width = check_half_width(half_width)
        self.relevance_layer = nn.Linear(key_size, query_size, bias=False)  # W_p
        self.relevance_energy = nn.Linear(query_size, 1, bias=False)  # v_p

    def project_keys(self, values: Tensor) -> Tensor:
        """The content score's keys (B, S, A) with log π(s) as one more column (B, S, A + 1)."""
        energy = self.relevance_energy(torch.tanh(self.relevance_layer(values)))  # (B, S, 1)
        return torch.cat([self.content.project_keys(values), F.logsigmoid(energy)], dim=-1)

    def select(self, scores: Tensor, log_prior: Tensor, mask: Tensor) -> Tensor:
        """Source positions K_t (B, T, k) of the k largest score + log π over real positions."""
        k = min(2 * self.half_width + 1, scores.size(-1))
        with torch.no_grad():  # the choice is not differentiable; see the class docstring
            ranking = (scores + log_prior.unsqueeze(1)).masked_fill(
                ~mask.unsqueeze(1), torch.finfo(scores.dtype).min
            )
            return ranking.topk(k, dim=-1, sorted=False).indices

    def forward(
        self, query: Tensor, memory: EncoderMemory, step: int = 0, state: Tensor | None = None
    ) -> AttentionOutput:
        batch, steps, _ = query.shape
        keys, log_prior = memory.keys[..., :-1], memory.keys[..., -1]  # (B, S, A), (B, S)
        scores = self.content.score(query, keys)  # (B, T, S): one number per pair
        index = self.select(scores, log_prior, memory.mask)  # (B, T, k)
        kept = scores.gather(-1, index)  # (B, T, k)
        # fewer than k real positions: the rest of K_t is padding, which gets weight 0
        valid = memory.mask.unsqueeze(1).expand(-1, steps, -1).gather(-1, index)
        prior = log_prior.unsqueeze(1).expand(-1, steps, -1).gather(-1, index).exp()
        weights = self.normalize(kept, valid) * prior  # (B, T, k)
        values = gather_window(memory.values, index)  # (B·T, k, C)
        width = index.size(-1)
        context = torch.bmm(weights.view(batch * steps, 1, width), values).view(batch, steps, -1)
        return AttentionOutput(context=context, weights=weights, window=index)

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """π(s) = sigmoid(v_p^T tanh(W_p h̄_s)); K_t = the k = 2D + 1 real positions with the
        largest score(h_t, h̄_s) + log π(s); a_t(s) = normalize_{K_t}(score) · π(s), 0 elsewhere."""
        w_p, v_p = (
            equations.weight(self.relevance_layer),
            equations.weight(self.relevance_energy)[0],
        )
        k = 2 * self.half_width + 1
        weights = equations.zero_weights(query, values)
        for b, length in enumerate(lengths.tolist()):
            prior = [torch.sigmoid(v_p @ torch.tanh(w_p @ values[b, s])) for s in range(length)]
            for t in range(query.size(1)):
                scores = [
                    self.content.reference_score(query[b, t], values[b, s]) for s in range(length)
                ]
                ranked = sorted(range(length), key=lambda s: -(scores[s] + torch.log(prior[s])))
                kept = sorted(ranked[:k])
                aligned = equations.normalize(self.normalizer, [scores[s] for s in kept])
                for s, a in zip(kept, aligned, strict=True):
                    weights[b, t, s] = a * prior[s]
        return weights
