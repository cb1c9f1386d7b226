"""The attention variants of issue 17 against their papers' equations.

test_attention.py checks properties (a distribution, zero on padding, exact zeros where
masked); a wrong formula with the same properties passes those. Here each variant's weights
and context are recomputed from its equation, one query and one source position at a time, on
hand-sized tensors (decoder H = 3, encoder K = 6, S = 7) whose every weight is set by hand
(`set_by_hand`), in float64. The sparse normalisers are recomputed from their definitions by
bisection on the threshold τ, not by the sort-based algorithm of the `entmax` package.

`REFERENCE_SCORES` maps configs/model/attention/<stem>.yaml to its reference:
`reference(attention, query, values, lengths, step) -> weights` (B, T, S) for queries (B, T, Q)
at target positions step, step + 1, ...; the module only lends its parameters, read by the
names its docstring ties to the paper's symbols. A variant whose context is not Σ_s a_t(s) h̄_s
(multi-head) has its context's reference in `REFERENCE_CONTEXTS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import support
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from seq2seq.data.batch import length_mask
from seq2seq.models.attention import Attention, EncoderMemory
from seq2seq.models.wiring import DecoderWiring

HIDDEN, EMBEDDING = 3, 2  # Q = H = 3; K = 6 (bidirectional encoder)
LENGTHS = [7, 4]  # S = 7: one full-length sentence and one padded one
STEPS, FIRST_STEP = 4, 1  # queries for target positions 1..4
HALF_WIDTH = 2  # D: top-k keeps 5 of the long sentence's 7 positions, all 4 of the short one's
HEADS = 3  # must divide H
CLOSE = {"rtol": 1e-5, "atol": 1e-6}


# ---------------------------------------------------------------- hand-set tensors


def by_hand(*shape: int, offset: int = 0, scale: float = 1.0) -> Tensor:
    """A fixed, irregular pattern of values in [-scale, scale] (no identity, no symmetry)."""
    count = math.prod(shape)
    values = [scale * (((7 * k + 3 * offset) % 13) - 6) / 6 for k in range(count)]
    return torch.tensor(values, dtype=torch.float64).view(*shape)


def set_by_hand(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for i, (_, parameter) in enumerate(sorted(module.named_parameters())):
            parameter.copy_(by_hand(*parameter.shape, offset=i + 1))


def hand_memory(key_size: int) -> EncoderMemory:
    """Encoder outputs h̄_s (B, S, K), zero on padding like packed RNN outputs."""
    lengths = torch.tensor(LENGTHS)
    mask = length_mask(lengths, max(LENGTHS))
    values = by_hand(len(LENGTHS), max(LENGTHS), key_size, offset=5) * mask.unsqueeze(-1)
    return EncoderMemory(values=values, keys=values, mask=mask, lengths=lengths)


def hand_queries(steps: int = STEPS) -> Tensor:
    return by_hand(len(LENGTHS), steps, HIDDEN, offset=11, scale=2.0)


def model_config(variant: str, *overrides: str) -> DictConfig:
    cfg = support.compose_model(
        "model=rnn",
        f"model/attention={variant}",
        f"model.hidden_size={HIDDEN}",
        f"model.embedding_size={EMBEDDING}",
        "model.dropout=0.0",
        *overrides,
    ).copy()
    if "half_width" in cfg.attention:
        cfg.attention.half_width = HALF_WIDTH
    if "heads" in cfg.attention:
        cfg.attention.heads = HEADS
    return cfg


def build_decoder(variant: str, *overrides: str) -> DecoderWiring:
    """The variant's decoder (wiring + attention) as the model builds it, weights set by hand."""
    model = instantiate(
        model_config(variant, *overrides), src_vocab_size=5, tgt_vocab_size=5, pad_id=0
    )
    set_by_hand(model.decoder)
    return model.decoder.double()


def with_keys(attention: Attention, memory: EncoderMemory) -> EncoderMemory:
    keys = attention.project_keys(memory.values)
    return EncoderMemory(values=memory.values, keys=keys, mask=memory.mask, lengths=memory.lengths)


def weight(layer: torch.nn.Linear) -> Tensor:
    return layer.weight.detach().double()


# ---------------------------------------------------------------- the normalisers' definitions


def softmax(scores: list[Tensor]) -> list[Tensor]:
    top = max(float(s) for s in scores)
    exps = [torch.exp(s - top) for s in scores]
    return [e / sum(exps) for e in exps]


def alpha_entmax(alpha: float) -> Callable[[list[Tensor]], list[Tensor]]:
    """α-entmax (Peters, Niculae & Martins 2019, eq. 9): p_s = [(α - 1) z_s - τ]_+^{1/(α-1)}
    with τ such that Σ_s p_s = 1 (α = 2 is sparsemax, Martins & Astudillo 2016), τ found by
    bisection: Σ p falls as τ rises, and τ lies in [(α-1) max z - 1, (α-1) max z]."""

    def mapping(scores: list[Tensor]) -> list[Tensor]:
        z = [(alpha - 1) * float(s) for s in scores]

        def total(tau: float) -> float:
            return sum(max(zi - tau, 0.0) ** (1 / (alpha - 1)) for zi in z)

        low, high = max(z) - 1, max(z)
        for _ in range(200):
            middle = (low + high) / 2
            low, high = (middle, high) if total(middle) > 1 else (low, middle)
        return [torch.tensor(max(zi - low, 0.0) ** (1 / (alpha - 1))) for zi in z]

    return mapping


NORMALIZE = {"softmax": softmax, "sparsemax": alpha_entmax(2.0), "entmax15": alpha_entmax(1.5)}


# ---------------------------------------------------------------- the papers' equations


def score_general(attention: Attention, h_t: Tensor, h_s: Tensor) -> Tensor:
    """Luong (2015) §3.1: h_t^T W_a h̄_s."""
    return h_t @ (weight(attention.key_layer) @ h_s)


def score_additive(attention: Attention, s_prev: Tensor, h_j: Tensor) -> Tensor:
    """Bahdanau (2015) A.1.2: e_tj = v_a^T tanh(W_a s_{t-1} + U_a h_j)."""
    w_a, u_a, v_a = (
        weight(attention.query_layer),
        weight(attention.key_layer),
        weight(attention.energy_layer)[0],
    )
    return v_a @ torch.tanh(w_a @ s_prev + u_a @ h_j)


def global_reference(score: Callable[[Attention, Tensor, Tensor], Tensor]) -> Callable:
    """a_t(s) = normalize_{s < S}(score(h_t, h̄_s)), 0 on padding, with the module's normaliser."""

    def reference(attention, query, values, lengths, step):
        normalize = NORMALIZE[attention.normalizer]
        weights = torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)
        for b, length in enumerate(lengths.tolist()):
            for t in range(query.size(1)):
                scores = [score(attention, query[b, t], values[b, s]) for s in range(length)]
                for s, a in enumerate(normalize(scores)):
                    weights[b, t, s] = a
        return weights

    return reference


def coverage_reference(attention, query, values, lengths, step):
    """See et al. (2017) eq. 11: e_t(s) = v_a^T tanh(W_a s_{t-1} + U_a h_s + w_c c_t(s)) with
    c_t(s) = Σ_{t' < t} a_{t'}(s), 0 before the first of these queries."""
    w_a, u_a, v_a = (
        weight(attention.query_layer),
        weight(attention.key_layer),
        weight(attention.energy_layer)[0],
    )
    w_c = weight(attention.coverage_layer)[:, 0]
    weights = torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)
    for b, length in enumerate(lengths.tolist()):
        coverage = [0.0] * length
        for t in range(query.size(1)):
            scores = [
                v_a @ torch.tanh(w_a @ query[b, t] + u_a @ values[b, s] + w_c * coverage[s])
                for s in range(length)
            ]
            for s, a in enumerate(softmax(scores)):
                weights[b, t, s] = a
                coverage[s] += float(a)
    return weights


def heads_of(attention: Attention, h_t: Tensor, h_s: Tensor) -> list[Tensor]:
    """Vaswani et al. (2017) §3.2.2 with Luong's dot score: q_i^T k_i, q_i = W_q^i h_t,
    k_i = W_k^i h̄_s, W^i the i-th block of Q / H rows."""
    queries = (weight(attention.query_heads) @ h_t).chunk(attention.heads)
    keys = (weight(attention.key_heads) @ h_s).chunk(attention.heads)
    return [q @ k for q, k in zip(queries, keys, strict=True)]


def multihead_head_weights(attention, query, values, lengths) -> Tensor:
    """a_t^i(s) = softmax_s(q_i^T k_i) (B, H, T, S)."""
    heads = torch.zeros(query.size(0), attention.heads, query.size(1), values.size(1))
    heads = heads.double()
    for b, length in enumerate(lengths.tolist()):
        for t in range(query.size(1)):
            scores = [heads_of(attention, query[b, t], values[b, s]) for s in range(length)]
            for i in range(attention.heads):
                for s, a in enumerate(softmax([head[i] for head in scores])):
                    heads[b, i, t, s] = a
    return heads


def multihead_reference(attention, query, values, lengths, step):
    """The weights reported: the mean of the heads' a_t^i."""
    return multihead_head_weights(attention, query, values, lengths).mean(dim=1)


def multihead_context(attention, query, values, lengths, step):
    """c_t = W_o [Σ_s a_t^1(s) h̄_s; ...; Σ_s a_t^H(s) h̄_s]."""
    heads = multihead_head_weights(attention, query, values, lengths)
    contexts = torch.einsum("bhts,bsk->bthk", heads, values).flatten(2)  # (B, T, H·K)
    return contexts @ weight(attention.output_layer).T


def topk_reference(attention, query, values, lengths, step):
    """π(s) = sigmoid(v_p^T tanh(W_p h̄_s)); K_t = the k = 2D + 1 real positions with the
    largest score(h_t, h̄_s) + log π(s); a_t(s) = normalize_{K_t}(score) · π(s), 0 elsewhere."""
    w_p, v_p = weight(attention.relevance_layer), weight(attention.relevance_energy)[0]
    normalize = NORMALIZE[attention.normalizer]
    k = 2 * attention.half_width + 1
    weights = torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)
    for b, length in enumerate(lengths.tolist()):
        prior = [torch.sigmoid(v_p @ torch.tanh(w_p @ values[b, s])) for s in range(length)]
        for t in range(query.size(1)):
            scores = [
                score_general(attention.content, query[b, t], values[b, s]) for s in range(length)
            ]
            ranked = sorted(range(length), key=lambda s: -(scores[s] + torch.log(prior[s])))
            kept = sorted(ranked[:k])
            for s, a in zip(kept, normalize([scores[s] for s in kept]), strict=True):
                weights[b, t, s] = a * prior[s]
    return weights


REFERENCE_SCORES: dict[str, Callable[..., Tensor]] = {
    "bahdanau_coverage": coverage_reference,
    "luong_general_entmax15": global_reference(score_general),
    "luong_local_topk": topk_reference,
    "multihead": multihead_reference,
}
# variants whose context is not Σ_s a_t(s) h̄_s over the weights above
REFERENCE_CONTEXTS: dict[str, Callable[..., Tensor]] = {"multihead": multihead_context}


@pytest.mark.parametrize("variant", sorted(REFERENCE_SCORES))
def test_new_variants_follow_their_equations(variant):
    attention = build_decoder(variant).attention
    memory = with_keys(attention, hand_memory(attention.key_size))
    query = hand_queries()
    with torch.no_grad():
        output = attention(query, memory, step=FIRST_STEP)
    args = (attention, query, memory.values, memory.lengths, FIRST_STEP)
    expected = REFERENCE_SCORES[variant](*args)
    torch.testing.assert_close(output.dense_weights(max(LENGTHS)), expected, **CLOSE)
    context = REFERENCE_CONTEXTS.get(variant)
    expected_context = (
        torch.einsum("bts,bsk->btk", expected, memory.values) if context is None else context(*args)
    )
    torch.testing.assert_close(output.context, expected_context, **CLOSE)


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("variant", ["luong_general_entmax15", "luong_local_topk"])
def test_sparse_normalizers_follow_their_definitions(variant, normalizer):
    attention = build_decoder(variant, f"model.attention.normalizer={normalizer}").attention
    memory = with_keys(attention, hand_memory(attention.key_size))
    with torch.no_grad():
        output = attention(hand_queries(), memory, step=FIRST_STEP)
    expected = REFERENCE_SCORES[variant](
        attention, hand_queries(), memory.values, memory.lengths, FIRST_STEP
    )
    weights = output.dense_weights(max(LENGTHS))
    torch.testing.assert_close(weights, expected, **CLOSE)
    # the hand-set scores are spread enough that the mappings zero some real positions
    assert ((weights == 0) & memory.mask.unsqueeze(1)).any()
