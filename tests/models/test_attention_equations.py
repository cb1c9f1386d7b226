"""Every attention score and both decoder wirings against the papers' equations.

test_attention.py checks properties (a distribution, zero on padding, the window's support);
a wrong formula with the same properties passes those. Here each variant's weights and context,
and each wiring's outputs, are compared with the paper's equation, written out one query and
one source position at a time, on hand-sized tensors (decoder H = 3, encoder K = 6 or 3, S = 7)
whose every weight is set by hand (`set_by_hand`), in float64.

Each equation lives beside its module: the attention class's `reference_weights` (a global
score's `reference_score`) and `reference_context` (seq2seq/models/rnn/attention/equations.py
has the plain normalisers and loops they share). The tests run over the files of
configs/model/attention/, so a variant whose class has no reference equation fails the suite,
naming the class and what to add; nothing here lists the variants.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import support
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from seq2seq import variants
from seq2seq.data.batch import length_mask
from seq2seq.models.rnn.attention import Attention, EncoderMemory, LocalAttention
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


# ---------------------------------------------------------------- the modules as configured


def model_config(
    variant: str, *overrides: str, config_dir: Path = support.CONFIG_DIR
) -> DictConfig:
    cfg = support.compose_model(
        "model=rnn",
        f"model/attention={variant}",
        f"model.hidden_size={HIDDEN}",
        f"model.embedding_size={EMBEDDING}",
        "model.dropout=0.0",
        "model.cell=gru",
        *overrides,
        config_dir=config_dir,
    ).copy()
    if "half_width" in cfg.attention:
        cfg.attention.half_width = HALF_WIDTH
    if "max_source_length" in cfg.attention:
        cfg.attention.max_source_length = MAX_SOURCE_LENGTH
    if "heads" in cfg.attention:
        cfg.attention.heads = HEADS
    return cfg


def build_decoder(
    variant: str, *overrides: str, config_dir: Path = support.CONFIG_DIR
) -> DecoderWiring:
    """The variant's decoder (wiring + attention) as the model builds it, weights set by hand."""
    return decoder_of(model_config(variant, *overrides, config_dir=config_dir))


def decoder_of(cfg: DictConfig) -> DecoderWiring:
    model = instantiate(cfg, src_vocab_size=5, tgt_vocab_size=5, pad_id=0)
    set_by_hand(model.decoder)
    return model.decoder.double()


def with_keys(attention: Attention, memory: EncoderMemory) -> EncoderMemory:
    keys = attention.project_keys(memory.values)
    return EncoderMemory(values=memory.values, keys=keys, mask=memory.mask, lengths=memory.lengths)


def reference(attention: Attention, equation: str, *args) -> Tensor:
    """The attention's `reference_weights` or `reference_context` of `args`; a class without
    its reference equation fails the test with what to add."""
    try:
        return getattr(attention, equation)(*args)
    except NotImplementedError as missing:
        message = str(missing)
    pytest.fail(message, pytrace=False)  # outside `except`: the message once, no traceback


def check_weights_and_context(attention: Attention) -> Tensor:
    """The module's weights and context equal its reference equation's on the hand-set
    tensors; returns the weights (B, T, S)."""
    memory = with_keys(attention, hand_memory(attention.key_size))
    query = hand_queries()
    with torch.no_grad():
        output = attention(query, memory, step=FIRST_STEP)
    weights = output.dense_weights(max(LENGTHS))
    args = (query, memory.values, memory.lengths, FIRST_STEP)
    torch.testing.assert_close(weights, reference(attention, "reference_weights", *args), **CLOSE)
    expected_context = reference(attention, "reference_context", *args)
    torch.testing.assert_close(output.context, expected_context, **CLOSE)
    return weights


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_and_context_follow_the_papers_equation(variant):
    check_weights_and_context(build_decoder(variant).attention)


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_normalizer_follows_its_definition_in_every_variant(variant, normalizer):
    """A config file that only changes the normaliser needs no code: each reference follows the
    module's `model.attention.normalizer` (the test above checks each file's own)."""
    attention = build_decoder(variant, f"model.attention.normalizer={normalizer}").attention
    check_weights_and_context(attention)


def takes_score(variant: str, score: str) -> bool:
    """Whether the variant offers this content score (top-k refuses concat, see topk.py)."""
    try:
        build_decoder(variant, f"model.attention.score={score}", "model.bidirectional=false")
    except InstantiationException as refused:
        assert "model.attention.score must be one of" in str(refused)
        return False
    return True


@pytest.mark.parametrize(
    ("variant", "score"),
    [
        (variant, score)
        for variant in VARIANTS
        if "score" in model_config(variant).attention
        for score in ("dot", "general", "concat")
        if takes_score(variant, score)
    ],
)
def test_every_content_score_follows_its_equation_where_a_variant_chooses_one(variant, score):
    """`model.attention.score` of the local, top-k and multi-head variants: each reference
    scores with the module's own content score (dot needs a unidirectional encoder)."""
    overrides = (f"model.attention.score={score}", "model.bidirectional=false")
    check_weights_and_context(build_decoder(variant, *overrides).attention)


SCALED = [v for v in VARIANTS if "scaled" in model_config(v).attention]


@pytest.mark.parametrize("variant", SCALED)
def test_a_scaled_score_is_the_score_over_the_root_of_its_width(variant):
    """`model.attention.scaled=true` (the score-scale ablation): weights and context by the
    scaled equation, from scores exactly 1/sqrt(H) of the unscaled module's."""
    plain = build_decoder(variant).attention
    scaled = build_decoder(variant, "model.attention.scaled=true").attention
    check_weights_and_context(scaled)
    memory, query = hand_memory(plain.key_size), hand_queries()
    scores = {
        module: module.score(query, with_keys(module, memory).keys) for module in (plain, scaled)
    }
    torch.testing.assert_close(scores[scaled], scores[plain] / math.sqrt(HIDDEN), **CLOSE)


def test_luong_dot_and_general_can_be_scaled():
    assert sorted(SCALED) == ["luong_dot", "luong_general"]


def test_one_head_is_the_plain_scores_equation():
    cfg = model_config("multihead", "model.attention.score=general")
    cfg.attention.heads = 1
    check_weights_and_context(decoder_of(cfg).attention)


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("variant", ["luong_general_entmax15", "luong_local_topk"])
def test_sparse_normalizers_zero_real_positions_here(variant, normalizer):
    """The hand-set scores are spread enough that the sparse mappings zero some real positions,
    so the comparison above checks where the zeros fall."""
    attention = build_decoder(variant, f"model.attention.normalizer={normalizer}").attention
    weights = check_weights_and_context(attention)
    assert ((weights == 0) & hand_memory(attention.key_size).mask.unsqueeze(1)).any()


class ScoreOnlyAttention(Attention):
    """A variant written without its reference equation."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


@pytest.fixture
def score_only_attention() -> Attention:
    return ScoreOnlyAttention(query_size=HIDDEN, key_size=HIDDEN).double()


def test_a_variant_without_its_reference_equation_is_named(score_only_attention):
    with pytest.raises(pytest.fail.Exception) as failure:
        check_weights_and_context(score_only_attention)
    message = str(failure.value)
    assert re.match(r"ScoreOnlyAttention \(\S*test_attention_equations\) has no reference", message)
    assert "reference_score(h_t, h_s)" in message
    assert "reference_weights(query, values, lengths, step)" in message


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


def attend(decoder, queries: list[Tensor], memory: EncoderMemory, b: int) -> Tensor:
    """c_t for one sentence b at target position t = len(queries) - 1, by the attention's
    reference equation given every query so far (coverage sums the earlier steps' weights)."""
    context = reference(
        decoder.attention,
        "reference_context",
        torch.stack(queries).unsqueeze(0),  # (1, t + 1, Q) for positions 0..t
        memory.values[b : b + 1],
        memory.lengths[b : b + 1],
        0,
    )
    return context[0, -1]


def bahdanau_decoder(decoder, embedded, s_0, memory) -> Tensor:
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
            c_t = attend(decoder, queries, memory, b)
            s = gru_cell(decoder.rnn, torch.cat([embedded[b, t], c_t]), s)
            outputs[b, t] = torch.tanh(w_o @ torch.cat([s, c_t, embedded[b, t]]) + b_o)
    return outputs


def luong_decoder(decoder, embedded, h_0, memory) -> Tensor:
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
            c_t = attend(decoder, queries, memory, b)
            h_tilde = torch.tanh(w_c @ torch.cat([c_t, h]))
            outputs[b, t] = h_tilde
    return outputs


WIRING_REFERENCES = {"bahdanau": bahdanau_decoder, "luong": luong_decoder}
WIRING_CASES = [(v, True) for v in VARIANTS] + [
    (v, False) for v in VARIANTS if model_config(v).decoder.wiring == "luong"
]


def check_wiring(variant: str, input_feeding: bool, config_dir: Path = support.CONFIG_DIR) -> None:
    """The variant's decoder outputs equal its wiring's equations around its attention's."""
    cfg = model_config(variant, config_dir=config_dir)
    overrides = (f"model.decoder.input_feeding={input_feeding}",)
    decoder = build_decoder(variant, *overrides, config_dir=config_dir)
    memory = with_keys(decoder.attention, hand_memory(decoder.attention.key_size))
    embedded = by_hand(len(LENGTHS), STEPS, EMBEDDING, offset=17)  # E y_{t-1}, t = 0..3
    initial = by_hand(1, len(LENGTHS), HIDDEN, offset=19, scale=0.5)  # s_0 / h_0 (L, B, H)
    state = RNNDecoderState(
        hidden=initial,
        memory=memory,
        feed=decoder.initial_feed(initial),
        attention=decoder.attention.initial_state(memory),
    )
    with torch.no_grad():
        features, _ = decoder(embedded, state)
        wiring = WIRING_REFERENCES[cfg.decoder.wiring]
        expected = wiring(decoder, embedded, initial[0], memory)
    torch.testing.assert_close(features, expected, **CLOSE)


@pytest.mark.parametrize(("variant", "input_feeding"), WIRING_CASES)
def test_decoder_wiring_follows_the_papers_equations(variant, input_feeding):
    check_wiring(variant, input_feeding)
