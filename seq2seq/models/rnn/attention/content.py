"""Content-based scores: Bahdanau's additive score and Luong's dot, general and concat."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention.base import Attention
from seq2seq.models.rnn.attention.equations import weight


class BahdanauAttention(Attention):
    """Additive score of Bahdanau et al. (2015), "Neural Machine Translation by Jointly Learning
    to Align and Translate", appendix A.1.2:

        e_tj = v_a^T tanh(W_a s_{t-1} + U_a h_j)

    with W_a, U_a mapping to the decoder's hidden size (the paper's n' = n) and no bias.
    `U_a h_j` does not depend on t, so it is the per-batch key projection.
    """

    def __init__(self, *, query_size: int, key_size: int, normalizer: str = "softmax") -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        self.query_layer = nn.Linear(query_size, query_size, bias=False)  # W_a
        self.key_layer = nn.Linear(key_size, query_size, bias=False)  # U_a
        self.energy_layer = nn.Linear(query_size, 1, bias=False)  # v_a

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_layer(values)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """v_a^T tanh(x) up to a constant: tanh(x) = 2 sigmoid(2x) - 1, so the score is
        2 v_a^T sigmoid(2x) - Σ v_a, and the constant Σ v_a, the same at every position, changes
        no weight (every normaliser is shift-invariant), so it is left out. On a CPU torch's
        sigmoid takes a fraction of its tanh's time (fp32: ~0.5 against ~3 ns an element), and
        this is the largest elementwise pass of the model: (N, T, S, A)."""
        doubled_query = self.query_layer(query).mul(2).unsqueeze(2)  # (N, T, 1, A)
        x2 = torch.add(doubled_query, keys.unsqueeze(1), alpha=2)  # 2x: (N, T, S, A)
        return 2 * self.energy_layer(torch.sigmoid(x2)).squeeze(-1)  # (N, T, S)

    def reference_score(self, h_t: Tensor, h_s: Tensor) -> Tensor:
        """Bahdanau (2015) A.1.2: e_tj = v_a^T tanh(W_a s_{t-1} + U_a h_j) (s_{t-1} is h_t,
        h_j is h_s)."""
        w_a, u_a = weight(self.query_layer), weight(self.key_layer)
        v_a = weight(self.energy_layer)[0]
        return v_a @ torch.tanh(w_a @ h_t + u_a @ h_s)


class LuongConcatAttention(BahdanauAttention):
    """The `concat` score of Luong et al. (2015), "Effective Approaches to Attention-based Neural
    Machine Translation", section 3.1:

        score(h_t, h̄_s) = v_a^T tanh(W_a [h_t; h̄_s])

    Splitting W_a over the concatenation gives exactly Bahdanau's additive score; the papers
    differ in the query (h_t here, s_{t-1} there), which the decoder wiring decides.
    """

    def reference_score(self, h_t: Tensor, h_s: Tensor) -> Tensor:
        """Luong (2015) §3.1: v_a^T tanh(W_a [h_t; h̄_s]), W_a one matrix over the concatenation."""
        w_a = torch.cat([weight(self.query_layer), weight(self.key_layer)], dim=1)
        v_a = weight(self.energy_layer)[0]
        return v_a @ torch.tanh(w_a @ torch.cat([h_t, h_s]))


class MultiplicativeAttention(Attention):
    """A score that is a dot product of the query with (projected) keys, h_t^T k_s, and with
    `scaled=True` that product over sqrt(d), d the query size: the scaling of Vaswani et al.
    (2017), "Attention Is All You Need", section 3.2.1, which keeps the products of wide
    vectors from pushing the softmax to where its gradient vanishes. Luong et al. (2015) do not
    scale; the study's score-scale ablation (configs/ablation/score_scale.yaml) does. The scale
    is folded into the keys, once per batch, so that a step costs the same either way.
    """

    def __init__(
        self, *, query_size: int, key_size: int, normalizer: str = "softmax", scaled: bool = False
    ) -> None:
        super().__init__(query_size=query_size, key_size=key_size, normalizer=normalizer)
        self.scaled = scaled

    @property
    def scale(self) -> float:
        """1/sqrt(d) with `scaled`, else 1."""
        return self.query_size**-0.5 if self.scaled else 1.0

    def unscaled_keys(self, values: Tensor) -> Tensor:
        """k_s before the scale (B, S, Q)."""
        return values

    def project_keys(self, values: Tensor) -> Tensor:
        keys = self.unscaled_keys(values)
        return keys * self.scale if self.scaled else keys

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (N, T, S)


class LuongDotAttention(MultiplicativeAttention):
    """The `dot` score of Luong et al. (2015), section 3.1: score(h_t, h̄_s) = h_t^T h̄_s
    (over sqrt(d) with `scaled`, see `MultiplicativeAttention`).

    It has no parameters, so the decoder state and the encoder outputs must have one size: with
    a bidirectional encoder that means `model.bidirectional=false` (the paper's encoder is
    unidirectional), which configs/model/attention/luong_dot.yaml sets.
    """

    def __init__(
        self, *, query_size: int, key_size: int, normalizer: str = "softmax", scaled: bool = False
    ) -> None:
        super().__init__(
            query_size=query_size, key_size=key_size, normalizer=normalizer, scaled=scaled
        )
        if query_size != key_size:
            raise ValueError(
                f"luong_dot scores h_t^T h̄_s, so the decoder hidden size ({query_size}) must "
                f"equal the encoder output size ({key_size}); a bidirectional encoder doubles "
                "it: set model.bidirectional=false or use model/attention=luong_general"
            )

    def reference_score(self, h_t: Tensor, h_s: Tensor) -> Tensor:
        """Luong (2015) §3.1: h_t^T h̄_s; with `scaled`, over sqrt(d) (Vaswani 2017 eq. 1)."""
        return (h_t @ h_s) * self.scale


class LuongGeneralAttention(MultiplicativeAttention):
    """The `general` score of Luong et al. (2015), section 3.1: score(h_t, h̄_s) = h_t^T W_a h̄_s
    (over sqrt(d) with `scaled`, see `MultiplicativeAttention`).

    `W_a h̄_s` does not depend on t, so it is the per-batch key projection.
    """

    def __init__(
        self, *, query_size: int, key_size: int, normalizer: str = "softmax", scaled: bool = False
    ) -> None:
        super().__init__(
            query_size=query_size, key_size=key_size, normalizer=normalizer, scaled=scaled
        )
        self.key_layer = nn.Linear(key_size, query_size, bias=False)  # W_a

    def unscaled_keys(self, values: Tensor) -> Tensor:
        return self.key_layer(values)

    def reference_score(self, h_t: Tensor, h_s: Tensor) -> Tensor:
        """Luong (2015) §3.1: h_t^T W_a h̄_s; with `scaled`, over sqrt(d) (Vaswani 2017 eq. 1)."""
        return (h_t @ (weight(self.key_layer) @ h_s)) * self.scale


# The content scores a local variant can use (`model.attention.score`), Luong et al. (2015) §3.1.
CONTENT_SCORES: dict[str, type[Attention]] = {
    "dot": LuongDotAttention,
    "general": LuongGeneralAttention,
    "concat": LuongConcatAttention,
}


def content_score(
    score: str, *, query_size: int, key_size: int, choices: tuple[str, ...] = tuple(CONTENT_SCORES)
) -> Attention:
    """The content score named by `model.attention.score` (one of `choices`), for these sizes."""
    if score not in choices:
        raise ValueError(f"model.attention.score must be one of {sorted(choices)}, got {score!r}")
    return CONTENT_SCORES[score](query_size=query_size, key_size=key_size)
