"""Every attention score and both decoder wirings against the papers' equations.

test_attention.py checks properties (a distribution, zero on padding, the window's support);
a wrong formula with the same properties passes those. Here each variant's weights and context,
and each wiring's outputs, are recomputed from the equation in the paper, one query and one
source position at a time, on hand-sized tensors (decoder H = 3, encoder K = 6 or 3, S = 7)
whose every weight is set by hand (`set_by_hand`), in float64.

`REFERENCE_SCORES` maps each configs/model/attention/<stem>.yaml to its reference; the tests
run over the config files, so a variant added without a pinned equation fails the suite.
A reference is `reference(attention, query, values, lengths, step) -> weights`: the module only
lends its parameters (read by the names its docstring ties to the paper's symbols), query is
(B, T, Q), values (B, S, K), and weights (B, T, S) for queries at target positions step, ...
A variant whose context is not Σ_s a_t(s) h̄_s (multi-head) has its context's reference in
`REFERENCE_CONTEXTS`. The sparse normalisers are recomputed from their definitions by bisection
on the threshold τ, not by the sort-based algorithm of the `entmax` package.
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

from seq2seq import variants
from seq2seq.data.batch import length_mask
from seq2seq.models.rnn.attention import (
    Attention,
    EncoderMemory,
    LocalAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
)
from seq2seq.models.rnn.attention.local import window_positions
from seq2seq.models.rnn.wiring import DecoderWiring, RNNDecoderState

VARIANTS = variants.attention_names()
HIDDEN, EMBEDDING = 3, 2  # Q = H = 3; K = 6 (bidirectional) or 3 (luong_dot's unidirectional)
LENGTHS = [7, 4]  # S = 7: one full-length sentence and one padded one
STEPS, FIRST_STEP = 4, 1  # queries for target positions 1..4
HALF_WIDTH = 2  # D: windows narrower than the sentences, clipped at both ends by these queries
HEADS = 3  # multi-head attention's H: must divide the hidden size
MAX_SOURCE_LENGTH = 5  # location's W_a rows: positions 5 and 6 of the long sentence get 0
# the modules run in float64 like the references, except local-p's p_t, float32 by design
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


# ---------------------------------------------------------------- the papers' equations


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


def weight(layer: torch.nn.Linear) -> Tensor:
    return layer.weight.detach().double()


def score_dot(attention: Attention, h_t: Tensor, h_s: Tensor) -> Tensor:
    """Luong (2015) §3.1: h_t^T h̄_s."""
    return h_t @ h_s


def score_general(attention: Attention, h_t: Tensor, h_s: Tensor) -> Tensor:
    """Luong (2015) §3.1: h_t^T W_a h̄_s."""
    w_a = attention.key_layer.weight.detach().double()  # (Q, K)
    return h_t @ (w_a @ h_s)


def score_concat(attention: Attention, h_t: Tensor, h_s: Tensor) -> Tensor:
    """Luong (2015) §3.1: v_a^T tanh(W_a [h_t; h̄_s]), W_a one matrix over the concatenation."""
    w_a = (
        torch.cat([attention.query_layer.weight, attention.key_layer.weight], dim=1)
        .detach()
        .double()
    )
    v_a = attention.energy_layer.weight.detach().double().squeeze(0)
    return v_a @ torch.tanh(w_a @ torch.cat([h_t, h_s]))


def score_additive(attention: Attention, s_prev: Tensor, h_j: Tensor) -> Tensor:
    """Bahdanau (2015) A.1.2: e_tj = v_a^T tanh(W_a s_{t-1} + U_a h_j)."""
    w_a, u_a = (
        attention.query_layer.weight.detach().double(),
        attention.key_layer.weight.detach().double(),
    )
    v_a = attention.energy_layer.weight.detach().double().squeeze(0)
    return v_a @ torch.tanh(w_a @ s_prev + u_a @ h_j)


CONTENT = {LuongDotAttention: score_dot, LuongGeneralAttention: score_general}
CONTENT[LuongConcatAttention] = score_concat


def global_reference(score: Callable[[Attention, Tensor, Tensor], Tensor]) -> Callable:
    """a_t(s) = normalize_{s < S}(score(h_t, h̄_s)), 0 on padding, with the module's normaliser
    (softmax: exp(score(h_t, h̄_s)) / Σ_{s' < S} exp(score(h_t, h̄_s')))."""

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


def location_reference(attention, query, values, lengths, step):
    """Luong (2015) §3.1: a_t = softmax(W_a h_t) over the sentence (rows of W_a it has)."""
    w_a = attention.location_layer.weight.detach().double()  # (max_source_length, Q)
    weights = torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)
    for b, length in enumerate(lengths.tolist()):
        scored = min(length, w_a.size(0))
        for t in range(query.size(1)):
            for s, a in enumerate(softmax([w_a[s] @ query[b, t] for s in range(scored)])):
                weights[b, t, s] = a
    return weights


def center_monotonic(attention, h_t: Tensor, length: int, t: int) -> float:
    """Local-m, Luong (2015) §3.2: p_t = t, held at the sentence's last position S - 1."""
    return float(min(t, length - 1))


def center_predictive(attention, h_t: Tensor, length: int, t: int) -> float:
    """Local-p, Luong (2015) eq. (9): p_t = S · sigmoid(v_p^T tanh(W_p h_t)), S the true length."""
    w_p = attention.position_layer.weight.detach().double()
    v_p = attention.position_energy.weight.detach().double().squeeze(0)
    return length * float(torch.sigmoid(v_p @ torch.tanh(w_p @ h_t)))


def local_reference(center: Callable, gaussian: bool) -> Callable:
    """Luong (2015) §3.2: align over the s in [p_t - D, p_t + D] inside the sentence, times
    exp(-(s - p_t)^2 / (2σ^2)) with σ = D / 2 for local-p (eq. 10), not renormalised."""

    def reference(attention, query, values, lengths, step):
        score, half_width = CONTENT[type(attention.content)], attention.half_width
        weights = torch.zeros(*query.shape[:2], values.size(1), dtype=torch.float64)
        for b, length in enumerate(lengths.tolist()):
            for t in range(query.size(1)):
                p_t = center(attention, query[b, t], length, step + t)
                window = [s for s in range(length) if p_t - half_width <= s <= p_t + half_width]
                scores = [score(attention.content, query[b, t], values[b, s]) for s in window]
                for s, a in zip(window, softmax(scores), strict=True):
                    prior = math.exp(-((s - p_t) ** 2) / (2 * (half_width / 2) ** 2))
                    weights[b, t, s] = a * (prior if gaussian else 1.0)
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
    "bahdanau": global_reference(score_additive),
    "luong_dot": global_reference(score_dot),
    "luong_general": global_reference(score_general),
    "luong_concat": global_reference(score_concat),
    "luong_location": location_reference,
    "luong_local_m": local_reference(center_monotonic, gaussian=False),
    "luong_local_p": local_reference(center_predictive, gaussian=True),
    "bahdanau_coverage": coverage_reference,
    "luong_general_entmax15": global_reference(score_general),
    "luong_local_topk": topk_reference,
    "multihead": multihead_reference,
}
# variants whose context is not Σ_s a_t(s) h̄_s over the weights above
REFERENCE_CONTEXTS: dict[str, Callable[..., Tensor]] = {"multihead": multihead_context}


# ---------------------------------------------------------------- the modules as configured


def model_config(variant: str, *overrides: str) -> DictConfig:
    cfg = support.compose_model(
        "model=rnn",
        f"model/attention={variant}",
        f"model.hidden_size={HIDDEN}",
        f"model.embedding_size={EMBEDDING}",
        "model.dropout=0.0",
        "model.cell=gru",
        *overrides,
    ).copy()
    if "half_width" in cfg.attention:
        cfg.attention.half_width = HALF_WIDTH
    if "max_source_length" in cfg.attention:
        cfg.attention.max_source_length = MAX_SOURCE_LENGTH
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


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_attention_config_has_a_reference_equation(variant):
    assert variant in REFERENCE_SCORES, (
        f"configs/model/attention/{variant}.yaml has no reference equation: add one to "
        "REFERENCE_SCORES in tests/models/test_attention_equations.py"
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_and_context_follow_the_papers_equation(variant):
    attention = build_decoder(variant).attention
    memory = with_keys(attention, hand_memory(attention.key_size))
    query = hand_queries()
    with torch.no_grad():
        output = attention(query, memory, step=FIRST_STEP)
    weights = output.dense_weights(max(LENGTHS))

    args = (attention, query, memory.values, memory.lengths, FIRST_STEP)
    expected = REFERENCE_SCORES[variant](*args)
    torch.testing.assert_close(weights, expected, **CLOSE)
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


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if isinstance(build_decoder(v).attention, LocalAttention)]
)
def test_local_windows_here_are_clipped_at_both_sentence_ends(variant):
    """The queries above must exercise both clips, or the reference could miss a wrong one."""
    attention = build_decoder(variant).attention
    memory = with_keys(attention, hand_memory(attention.key_size))
    with torch.no_grad():
        center = attention.center(hand_queries(), memory, FIRST_STEP)  # (B, T)
    last = (memory.lengths - 1).unsqueeze(1)
    assert (center - HALF_WIDTH < 0).any() and (center + HALF_WIDTH > last).any()


@pytest.mark.parametrize(
    ("center", "length", "expected"),
    [
        (0.7, 5, [0, 1, 2]),  # [-1.3, 2.7]: clipped at the start, 3 lies past p_t + D
        (2.0, 5, [0, 1, 2, 3, 4]),  # [0, 4]: an integer p_t keeps all 2D + 1 positions
        (4.6, 5, [3, 4]),  # [2.6, 6.6]: clipped at the end of the true sentence
        (3.0, 4, [1, 2, 3]),  # p_t = S - 1 of a short sentence in a longer batch
    ],
)
def test_window_arithmetic_at_both_sentence_ends(center, length, expected):
    positions, valid = window_positions(torch.tensor([[center]]), 2, torch.tensor([length]))
    assert positions[valid].long().tolist() == expected


def test_local_p_gaussian_and_center_by_hand():
    """p_t = S·sigmoid(v_p^T tanh(W_p h_t)) and exp(-(s - p_t)^2 / (2σ^2)), σ = D / 2, with
    numbers worked out on paper: W_p = I, v_p = (1, 0, 0), h_t = (atanh(0.5), 0, 0) gives
    p_t = 4·sigmoid(0.5); D = 2 gives σ = 1."""
    attention = build_decoder("luong_local_p").attention
    with torch.no_grad():
        attention.position_layer.weight.copy_(torch.eye(HIDDEN))
        attention.position_energy.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    query = torch.tensor([[[math.atanh(0.5), 0.0, 0.0]]], dtype=torch.float64)
    memory = EncoderMemory(
        values=torch.zeros(1, 6, 6, dtype=torch.float64),
        keys=torch.zeros(1, 6, HIDDEN, dtype=torch.float64),
        mask=length_mask(torch.tensor([4]), 6),
        lengths=torch.tensor([4]),
    )
    p_t = 4 / (1 + math.exp(-0.5))  # 2.4980...: window [0.498, 4.498] ∩ [0, 3] = {1, 2, 3}
    with torch.no_grad():
        center = attention.center(query, memory, step=0)
        weights = attention(query, memory, step=0).dense_weights(6)[0, 0]
    assert center.item() == pytest.approx(p_t, rel=1e-6)
    # equal keys: align is uniform, 1/3 over the window, then scaled by the Gaussian
    expected = [0.0] + [math.exp(-((s - p_t) ** 2) / 2) / 3 for s in (1, 2, 3)] + [0.0, 0.0]
    assert weights.tolist() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- the wirings


def gru_cell(rnn: torch.nn.GRU, x: Tensor, h: Tensor) -> Tensor:
    """One GRU step written out (Cho et al., 2014, as torch.nn.GRU documents its gates)."""
    w_ir, w_iz, w_in = rnn.weight_ih_l0.detach().double().chunk(3)
    w_hr, w_hz, w_hn = rnn.weight_hh_l0.detach().double().chunk(3)
    b_ir, b_iz, b_in = rnn.bias_ih_l0.detach().double().chunk(3)
    b_hr, b_hz, b_hn = rnn.bias_hh_l0.detach().double().chunk(3)
    r = torch.sigmoid(w_ir @ x + b_ir + w_hr @ h + b_hr)
    z = torch.sigmoid(w_iz @ x + b_iz + w_hz @ h + b_hz)
    n = torch.tanh(w_in @ x + b_in + r * (w_hn @ h + b_hn))
    return (1 - z) * n + z * h


def attend(variant: str, decoder, queries: list[Tensor], memory: EncoderMemory, b: int):
    """c_t = Σ_s a_t(s) h̄_s for one sentence b at target position t = len(queries) - 1, the
    reference given every query so far (coverage sums the earlier steps' weights)."""
    args = (
        decoder.attention,
        torch.stack(queries).unsqueeze(0),  # (1, t + 1, Q) for positions 0..t
        memory.values[b : b + 1],
        memory.lengths[b : b + 1],
        0,
    )
    if variant in REFERENCE_CONTEXTS:
        return REFERENCE_CONTEXTS[variant](*args)[0, -1]
    return REFERENCE_SCORES[variant](*args)[0, -1] @ memory.values[b]


def bahdanau_decoder(variant, decoder, embedded, s_0, memory) -> Tensor:
    """Bahdanau (2015) A.2: c_t from s_{t-1}; s_t = RNN(s_{t-1}, [E y_{t-1}; c_t]);
    t_t = tanh(W_o [s_t; c_t; E y_{t-1}] + b_o)."""
    w_o, b_o = (
        decoder.deep_output.weight.detach().double(),
        decoder.deep_output.bias.detach().double(),
    )
    outputs = torch.zeros(*embedded.shape[:2], w_o.size(0), dtype=torch.float64)
    for b in range(embedded.size(0)):
        s, queries = s_0[b], []
        for t in range(embedded.size(1)):
            queries.append(s)
            c_t = attend(variant, decoder, queries, memory, b)
            s = gru_cell(decoder.rnn, torch.cat([embedded[b, t], c_t]), s)
            outputs[b, t] = torch.tanh(w_o @ torch.cat([s, c_t, embedded[b, t]]) + b_o)
    return outputs


def luong_decoder(variant, decoder, embedded, h_0, memory) -> Tensor:
    """Luong (2015) §3 and §3.3: h_t = RNN(h_{t-1}, [E y_{t-1}; h~_{t-1}]) with h~_0 = 0
    (without input feeding [E y_{t-1}] alone); c_t from h_t; h~_t = tanh(W_c [c_t; h_t])."""
    w_c = decoder.combine_layer.weight.detach().double()
    outputs = torch.zeros(*embedded.shape[:2], w_c.size(0), dtype=torch.float64)
    for b in range(embedded.size(0)):
        h, h_tilde, queries = h_0[b], torch.zeros(w_c.size(0), dtype=torch.float64), []
        for t in range(embedded.size(1)):
            fed = [embedded[b, t], h_tilde] if decoder.input_feeding else [embedded[b, t]]
            h = gru_cell(decoder.rnn, torch.cat(fed), h)
            queries.append(h)
            c_t = attend(variant, decoder, queries, memory, b)
            h_tilde = torch.tanh(w_c @ torch.cat([c_t, h]))
            outputs[b, t] = h_tilde
    return outputs


WIRING_REFERENCES = {"bahdanau": bahdanau_decoder, "luong": luong_decoder}
WIRING_CASES = [(v, True) for v in VARIANTS] + [
    (v, False) for v in VARIANTS if model_config(v).decoder.wiring == "luong"
]


@pytest.mark.parametrize(("variant", "input_feeding"), WIRING_CASES)
def test_decoder_wiring_follows_the_papers_equations(variant, input_feeding):
    decoder = build_decoder(variant, f"model.decoder.input_feeding={input_feeding}")
    memory = with_keys(decoder.attention, hand_memory(decoder.attention.key_size))
    embedded = by_hand(len(LENGTHS), STEPS, EMBEDDING, offset=17)  # E y_{t-1}, t = 0..3
    initial = by_hand(1, len(LENGTHS), HIDDEN, offset=19, scale=0.5)  # s_0 / h_0 (L, B, H)
    state = RNNDecoderState(
        hidden=initial,
        memory=memory,
        feed=decoder.initial_feed(initial),
        attention=decoder.attention.initial_state(memory),
    )
    wiring = WIRING_REFERENCES[model_config(variant).decoder.wiring]
    with torch.no_grad():
        features, _ = decoder(embedded, state)
        expected = wiring(variant, decoder, embedded, initial[0], memory)
    torch.testing.assert_close(features, expected, **CLOSE)
