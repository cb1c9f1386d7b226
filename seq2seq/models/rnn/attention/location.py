"""Luong's location-based alignment: where to look is predicted from the decoder state alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.models.rnn.attention import equations
from seq2seq.models.rnn.attention.base import Attention


class LuongLocationAttention(Attention):
    """Location-based attention of Luong et al. (2015), section 3.1:

        a_t = softmax(W_a h_t)

    W_a has one row per source position up to `max_source_length`; the softmax runs over each
    sentence's true length. Positions at or beyond `max_source_length` cannot be scored and get
    weight 0 (a longer sentence is still translated, its tail is just never attended).
    """

    def __init__(
        self,
        *,
        query_size: int,
        key_size: int,
        max_source_length: int = 128,
        normalizer: str = "softmax",
    ) -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        if max_source_length < 1:
            raise ValueError(
                f"model.attention.max_source_length must be >= 1, got {max_source_length}"
            )
        self.max_source_length = max_source_length
        self.location_layer = nn.Linear(query_size, max_source_length, bias=False)  # W_a

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        source_length = keys.size(1)
        scores = self.location_layer(query)[..., :source_length]  # (N, T, min(S, max))
        missing = source_length - scores.size(-1)
        if missing > 0:
            scores = F.pad(scores, (0, missing), value=torch.finfo(scores.dtype).min)
        return scores  # (N, T, S)

    def reference_weights(
        self, query: Tensor, values: Tensor, lengths: Tensor, step: int
    ) -> Tensor:
        """Luong (2015) §3.1: a_t = softmax(W_a h_t) (or the configured normaliser) over the
        sentence's positions that W_a has a row for; 0 beyond them."""
        w_a = equations.weight(self.location_layer)  # (max_source_length, Q)
        weights = equations.zero_weights(query, values)
        for b, length in enumerate(lengths.tolist()):
            scored = min(length, w_a.size(0))
            for t in range(query.size(1)):
                scores = [w_a[s] @ query[b, t] for s in range(scored)]
                for s, a in enumerate(equations.normalize(self.normalizer, scores)):
                    weights[b, t, s] = a
        return weights
