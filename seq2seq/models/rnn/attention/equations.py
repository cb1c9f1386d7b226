"""The papers' equations written out plainly: what each variant's reference method is made of.

Every attention class has `reference_weights(query, values, lengths, step)` (and
`reference_context`), its weights recomputed in float64 from its paper's equation, one query
and one source position at a time, the module only lending its parameters.
tests/models/test_attention_equations.py compares them with the vectorised `forward` on
hand-set weights. So that the test compares the code with the definitions and not with itself,
nothing here uses the production code: not the masked normalisers, the `entmax` package or
`window_positions`. The sparse normalisers are recomputed from their definitions by bisection
on the threshold τ, not by the `entmax` package's sort-based algorithm.

Shapes as in `Attention.forward`: query (B, T, Q) at target positions step, step + 1, ...,
values (B, S, K) the encoder outputs, lengths (B,) the true source lengths, weights (B, T, S).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

# score(h_t, h̄_s) of one query (Q,) and one source position (K,)
Score = Callable[[Tensor, Tensor], Tensor]


def weight(layer: nn.Linear) -> Tensor:
    """The layer's matrix in float64, detached: a reference reads parameters, never trains them."""
    return layer.weight.detach().double()


def softmax(scores: list[Tensor]) -> list[Tensor]:
    """exp(z_s) / Σ_s' exp(z_s'), each exponent shifted by the largest score (same value)."""
    top = max(float(s) for s in scores)
    exps = [torch.exp(s - top) for s in scores]
    return [e / sum(exps) for e in exps]


def alpha_entmax(scores: list[Tensor], alpha: float) -> list[Tensor]:
    """α-entmax (Peters, Niculae & Martins 2019, eq. 9): p_s = [(α - 1) z_s - τ]_+^{1/(α-1)}
    with τ such that Σ_s p_s = 1 (α = 2 is sparsemax, Martins & Astudillo 2016), τ found by
    bisection: Σ p falls as τ rises, and τ lies in [(α-1) max z - 1, (α-1) max z]."""
    z = [(alpha - 1) * float(s) for s in scores]

    def total(tau: float) -> float:
        return sum(max(zi - tau, 0.0) ** (1 / (alpha - 1)) for zi in z)

    low, high = max(z) - 1, max(z)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if total(middle) > 1 else (low, middle)
    return [torch.tensor(max(zi - low, 0.0) ** (1 / (alpha - 1)), dtype=torch.float64) for zi in z]


def normalize(normalizer: str, scores: list[Tensor]) -> list[Tensor]:
    """Weights of `scores` by the module's `model.attention.normalizer`, from its definition."""
    if normalizer == "softmax":
        return softmax(scores)
    return alpha_entmax(scores, {"sparsemax": 2.0, "entmax15": 1.5}[normalizer])


def zero_weights(query: Tensor, values: Tensor) -> Tensor:
    """(B, T, S) zeros in float64: every weight a reference does not set is exactly 0."""
    return torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)


def global_weights(
    score: Score, normalizer: str, query: Tensor, values: Tensor, lengths: Tensor
) -> Tensor:
    """a_t(s) = normalize_{s < S}(score(h_t, h̄_s)) over each sentence's S real positions, 0 on
    padding (softmax: exp(score(h_t, h̄_s)) / Σ_{s' < S} exp(score(h_t, h̄_s')))."""
    weights = zero_weights(query, values)
    for b, length in enumerate(lengths.tolist()):
        for t in range(query.size(1)):
            scores = [score(query[b, t], values[b, s]) for s in range(length)]
            for s, a in enumerate(normalize(normalizer, scores)):
                weights[b, t, s] = a
    return weights


def window(center: float, half_width: int, length: int) -> list[int]:
    """Luong et al. (2015) §3.2: the positions s in [p_t - D, p_t + D] inside the sentence."""
    return [s for s in range(length) if center - half_width <= s <= center + half_width]
