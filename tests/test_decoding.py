"""Greedy and beam search against scripted models with hand-worked answers, and a tiny GRU.

The scripted model's `step()` returns fixed probabilities chosen by the source sentence and the
target prefix, so every expected hypothesis and score below is worked out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import Tensor, nn

from seq2seq import decoding
from seq2seq.data.batch import Batch
from seq2seq.models.interface import DecoderState, ModelOutput, Seq2SeqModel, StepOutput

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAD, BOS, EOS, A, B, C, D = 0, 2, 3, 4, 5, 6, 7
VOCAB = 8
FLOOR = 1e-12  # probability of tokens a script leaves out: tiny, as after a real softmax

Script = Callable[[tuple[int, ...]], dict[int, float]]


def table(rows: dict[tuple[int, ...], dict[int, float]], default: dict[int, float]) -> Script:
    return lambda prefix: rows.get(prefix, default)


ENDS = {EOS: 1.0}
ALWAYS_ENDS = table({}, ENDS)
# Greedy takes A (0.5) then EOS (0.4): P = 0.2. Beam 2 also keeps B and finds B EOS: P = 0.36.
GREEDY_MISSES = table(
    {(): {A: 0.5, B: 0.4, EOS: 0.1}, (A,): {EOS: 0.4, A: 0.3, B: 0.3}, (B,): {EOS: 0.9, A: 0.05}},
    ENDS,
)
# Short "A" has P = 0.4 · 0.9 = 0.36, long "B B B" has P = 0.6 · 0.8³ = 0.3072; the C branches
# never end, so with beam 2 the search finishes exactly these two after 4 steps.
SHORT_OR_LONG = table(
    {
        (): {A: 0.4, B: 0.6},
        (A,): {EOS: 0.9, C: 0.1},
        (B,): {B: 0.8, C: 0.2},
        (B, B): {B: 0.8, C: 0.2},
        (B, B, B): {EOS: 0.8, C: 0.2},
    },
    {C: 1.0},
)
# EOS first (P 0.6, empty output), then "A" (P 0.4): beam 2 is done after two steps.
ENDS_AT_ONCE = table({(): {EOS: 0.6, A: 0.4}}, ENDS)
NEVER_ENDS = table({}, {C: 0.5, D: 0.3, A: 0.2})
# The second beam's child (B C, P 0.4) overtakes the first beam's (A C, A D: 0.3 each), so the
# survivors' parents come in the order (1, 0): histories must follow them.
CROSSING = table({(): {A: 0.6, B: 0.4}, (A,): {C: 0.5, D: 0.5}, (B,): {C: 1.0}}, ENDS)


class ScriptedState(DecoderState):
    def __init__(self, keys: Tensor, prefix: Tensor, src_lengths: Tensor, src_len: int) -> None:
        self.keys, self.prefix, self.src_lengths, self.src_len = keys, prefix, src_lengths, src_len

    def reorder(self, indices: Tensor) -> ScriptedState:
        return ScriptedState(
            self.keys[indices], self.prefix[indices], self.src_lengths[indices], self.src_len
        )


class ScriptedModel(Seq2SeqModel):
    """Sentence `src[b, 0] = k` follows `scripts[k]`; records the rows of every step call.

    Its attention is one-hot at (input token mod source length), so a test can tell whether
    the search carried each hypothesis' attention history along with it.
    """

    def __init__(self, scripts: dict[int, Script]) -> None:
        super().__init__()
        self.pad_id = PAD
        self.scripts = scripts
        self.step_rows: list[int] = []

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        return src, src_lengths

    def init_state(self, encoded: tuple[Tensor, Tensor]) -> ScriptedState:
        src, src_lengths = encoded
        return ScriptedState(src[:, 0], src.new_empty(src.size(0), 0), src_lengths, src.size(1))

    def step(
        self, tokens: Tensor, state: ScriptedState, return_attention: bool = False
    ) -> StepOutput:
        self.step_rows.append(tokens.numel())
        prefix = torch.cat([state.prefix, tokens.unsqueeze(1)], dim=1)
        probs = torch.full((tokens.numel(), VOCAB), FLOOR)
        for row, (key, seq) in enumerate(zip(state.keys.tolist(), prefix.tolist())):
            for token, p in self.scripts[key](tuple(seq[1:])).items():
                probs[row, token] = p
        attention = nn.functional.one_hot(tokens % state.src_lengths, state.src_len).float()
        new_state = ScriptedState(state.keys, prefix, state.src_lengths, state.src_len)
        return StepOutput(probs.log(), new_state, attention if return_attention else None)

    def forward(self, src, src_lengths, tgt_in, return_attention=False) -> ModelOutput:
        state = self.init_state(self.encode(src, src_lengths))
        log_probs = []
        for t in range(tgt_in.size(1)):
            out = self.step(tgt_in[:, t], state)
            log_probs.append(out.log_probs)
            state = out.state
        return ModelOutput(torch.stack(log_probs, dim=1))


def sources(keys: list[int], lengths: list[int]) -> tuple[Tensor, Tensor]:
    """A padded source batch whose sentence b starts with its script key keys[b]."""
    src = torch.full((len(keys), max(lengths)), PAD)
    for b, (key, length) in enumerate(zip(keys, lengths)):
        src[b, :length] = A
        src[b, 0] = key
    return src, torch.tensor(lengths)


SETTINGS = decoding.SearchSettings(beam_size=2, alpha=0.0, max_len_a=0.0, max_len_b=10)


def split(overrides: dict) -> tuple[decoding.SearchSettings, dict]:
    """(SETTINGS with the overrides that name its fields, the other keyword arguments)."""
    fields = {k: v for k, v in overrides.items() if hasattr(SETTINGS, k)}
    rest = {k: v for k, v in overrides.items() if k not in fields}
    return replace(SETTINGS, **fields), dict(bos_id=BOS, eos_id=EOS) | rest


def beam(model, src, src_lengths, **overrides) -> list[list[decoding.Hypothesis]]:
    settings, kwargs = split(overrides)
    return decoding.beam_search(model, src, src_lengths, settings, **kwargs)


def greedy(model, src, src_lengths, **overrides) -> list[list[decoding.Hypothesis]]:
    settings, kwargs = split(overrides)
    return decoding.greedy_search(model, src, src_lengths, settings, **kwargs)


def assert_same(left: list[list[decoding.Hypothesis]], right: list[list[decoding.Hypothesis]]):
    assert [[h.tokens for h in hyps] for hyps in left] == [
        [h.tokens for h in hyps] for hyps in right
    ]
    for hyps_l, hyps_r in zip(left, right):
        for h_l, h_r in zip(hyps_l, hyps_r):
            assert h_l.score == pytest.approx(h_r.score, rel=1e-5, abs=1e-6)
            if h_l.attention is not None or h_r.attention is not None:
                torch.testing.assert_close(h_l.attention, h_r.attention)


# ------------------------------------------------------------------------ hand-worked cases


def test_length_penalty_is_gnmt():
    assert decoding.length_penalty(1, 1.0) == 1.0  # (5 + 1) / 6
    assert decoding.length_penalty(7, 1.0) == 2.0
    assert decoding.length_penalty(7, 0.0) == 1.0
    assert decoding.length_penalty(13, 0.5) == pytest.approx(math.sqrt(3.0))


def test_beam_finds_the_hypothesis_greedy_misses():
    model = ScriptedModel({1: GREEDY_MISSES})
    src, lengths = sources([1], [3])
    (best,) = greedy(model, src, lengths)
    assert best[0].tokens == [A]
    assert best[0].log_prob == pytest.approx(math.log(0.2))
    (nbest,) = beam(model, src, lengths, n_best=2)
    assert [h.tokens for h in nbest] == [[B], [A]]
    assert [h.log_prob for h in nbest] == pytest.approx([math.log(0.36), math.log(0.2)])


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [([A], math.log(0.36)), ([B, B, B], math.log(0.3072))]),
        # lp("A EOS") = 7/6 and lp("B B B EOS") = 9/6 = 1.5 turn the order around
        (1.0, [([B, B, B], math.log(0.3072) / 1.5), ([A], math.log(0.36) / (7 / 6))]),
    ],
)
def test_length_penalty_changes_the_winner(alpha, expected):
    model = ScriptedModel({1: SHORT_OR_LONG})
    (nbest,) = beam(model, *sources([1], [2]), alpha=alpha, n_best=2)
    assert [h.tokens for h in nbest] == [tokens for tokens, _ in expected]
    assert [h.score for h in nbest] == pytest.approx([score for _, score in expected])
    # one row at the first step (the K beams would be identical), then K = 2; both finished at
    # step 4 of 11 allowed: stop there
    assert model.step_rows == [1, 2, 2, 2]


def test_histories_follow_their_parents():
    (nbest,) = beam(ScriptedModel({1: CROSSING}), *sources([1], [2]), n_best=2)
    assert [h.tokens for h in nbest] == [[B, C], [A, C]]
    assert [h.log_prob for h in nbest] == pytest.approx([math.log(0.4), math.log(0.3)])


def test_empty_output_when_eos_comes_first():
    model = ScriptedModel({1: ENDS_AT_ONCE})
    (nbest,) = beam(model, *sources([1], [2]), n_best=2)
    assert [h.tokens for h in nbest] == [[], [A]]
    assert nbest[0].score == pytest.approx(math.log(0.6))


def test_finished_sentences_leave_the_batch():
    model = ScriptedModel({1: ENDS_AT_ONCE, 2: SHORT_OR_LONG})
    src, lengths = sources([1, 2], [2, 4])
    beam(model, src, lengths)
    # one row per sentence at first; sentence 1 ends after two steps; sentence 2's two beams go
    # on alone for two more
    assert model.step_rows == [2, 4, 2, 2]
    model.step_rows.clear()
    greedy(model, src, lengths)
    assert model.step_rows == [2, 1, 1, 1]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_hypotheses_stop_at_the_length_limit_sorted_by_score(beam_size):
    model = ScriptedModel({1: NEVER_ENDS})
    src, lengths = sources([1, 1], [2, 5])
    kwargs = dict(beam_size=beam_size, n_best=beam_size, alpha=0.6, max_len_a=1.0, max_len_b=1)
    nbests = beam(model, src, lengths, **kwargs)
    for nbest, limit in zip(nbests, [3, 6]):  # floor(1.0 · src_len + 1)
        assert len(nbest) == beam_size
        assert all(len(h.tokens) == limit for h in nbest)  # EOS is forced right at the limit
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    assert nbests[0][0].tokens == [C, C, C]
    assert len(model.step_rows) == 7  # six tokens and the forced EOS, not a step more


def test_max_output_lengths_per_sentence():
    lengths = decoding.max_output_lengths(torch.tensor([3, 10]), max_len_a=1.5, max_len_b=2)
    assert lengths.tolist() == [6, 17]


def test_attention_follows_each_hypothesis():
    model = ScriptedModel({1: SHORT_OR_LONG, 2: GREEDY_MISSES, 3: NEVER_ENDS, 4: CROSSING})
    src, lengths = sources([1, 2, 3, 4], [2, 5, 3, 4])
    kwargs = dict(alpha=1.0, max_len_a=0.0, max_len_b=4, return_attention=True)
    for nbests in (
        beam(model, src, lengths, n_best=2, **kwargs),
        greedy(model, src, lengths, **kwargs),
    ):
        for nbest, src_len in zip(nbests, lengths.tolist()):
            for hyp in nbest:
                assert hyp.attention.shape == (len(hyp.tokens) + 1, src_len)
                inputs = torch.tensor([BOS, *hyp.tokens])
                assert hyp.attention.argmax(dim=1).tolist() == (inputs % src_len).tolist()


# ----------------------------------------------------------------------- equivalences


def test_greedy_equals_beam_of_one_on_scripts():
    model = ScriptedModel({1: GREEDY_MISSES, 2: SHORT_OR_LONG, 3: ENDS_AT_ONCE, 4: NEVER_ENDS})
    src, lengths = sources([1, 2, 3, 4], [3, 1, 4, 2])
    kwargs = dict(alpha=1.0, max_len_a=2.0, max_len_b=1, return_attention=True)
    assert_same(
        greedy(model, src, lengths, **kwargs), beam(model, src, lengths, beam_size=1, **kwargs)
    )


def test_batched_equals_one_sentence_at_a_time_on_scripts():
    model = ScriptedModel({1: GREEDY_MISSES, 2: SHORT_OR_LONG, 3: ENDS_AT_ONCE, 4: NEVER_ENDS})
    keys, src_lens = [2, 4, 1, 3], [2, 5, 1, 3]
    kwargs = dict(alpha=1.0, max_len_a=1.0, max_len_b=2, return_attention=True)
    for decode in (greedy, lambda *a, **k: beam(*a, beam_size=3, n_best=3, **k)):
        batched = decode(model, *sources(keys, src_lens), **kwargs)
        alone = [decode(model, *sources([k], [n]), **kwargs)[0] for k, n in zip(keys, src_lens)]
        assert_same(batched, alone)


class TinyGRUState(DecoderState):
    def __init__(self, hidden: Tensor, memory: Tensor, mask: Tensor, steps: Tensor) -> None:
        self.hidden, self.memory, self.mask, self.steps = hidden, memory, mask, steps

    def reorder(self, indices: Tensor) -> TinyGRUState:
        return TinyGRUState(
            self.hidden[indices], self.memory[indices], self.mask[indices], self.steps[indices]
        )


class TinyGRU(Seq2SeqModel):
    """A randomly initialised GRU encoder-decoder with dot attention, for search properties.

    EOS grows likelier with every step taken, so that hypotheses end at varied lengths.
    """

    def __init__(self, vocab_size: int = 11, hidden_size: int = 16, eos_slope: float = 0.2) -> None:
        super().__init__()
        self.pad_id = PAD
        self.src_embed = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        self.encoder = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.decoder = nn.GRUCell(hidden_size, hidden_size)
        self.output = nn.Linear(2 * hidden_size, vocab_size)
        self.eos_slope = eos_slope

    def encode(self, src: Tensor, src_lengths: Tensor) -> TinyGRUState:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.src_embed(src), src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        memory, final = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True)
        mask = torch.arange(src.size(1)).unsqueeze(0) < src_lengths.unsqueeze(1)
        steps = torch.zeros(src.size(0), dtype=memory.dtype)
        return TinyGRUState(final[0], memory, mask[:, : memory.size(1)], steps)

    def init_state(self, encoded: TinyGRUState) -> TinyGRUState:
        return encoded

    def step(
        self, tokens: Tensor, state: TinyGRUState, return_attention: bool = False
    ) -> StepOutput:
        hidden = self.decoder(self.tgt_embed(tokens), state.hidden)
        scores = torch.einsum("bsh,bh->bs", state.memory, hidden).masked_fill(~state.mask, -1e9)
        attention = scores.softmax(dim=1)
        context = torch.einsum("bs,bsh->bh", attention, state.memory)
        logits = self.output(torch.cat([hidden, context], dim=1))
        logits[:, EOS] += self.eos_slope * state.steps
        new_state = TinyGRUState(hidden, state.memory, state.mask, state.steps + 1)
        return StepOutput(
            logits.log_softmax(dim=1), new_state, attention if return_attention else None
        )

    def forward(self, src, src_lengths, tgt_in, return_attention=False) -> ModelOutput:
        state = self.init_state(self.encode(src, src_lengths))
        logits = []
        for t in range(tgt_in.size(1)):
            out = self.step(tgt_in[:, t], state)
            logits.append(out.log_probs)
            state = out.state
        return ModelOutput(torch.stack(logits, dim=1))


@pytest.fixture(scope="module")
def gru_batch() -> tuple[TinyGRU, Tensor, Tensor]:
    torch.manual_seed(0)
    model = TinyGRU().double().eval()  # float64: batching must not flip near-ties
    src_lengths = torch.tensor([5, 1, 7, 3, 6, 2])
    src = torch.randint(4, 11, (6, 7)).masked_fill(
        torch.arange(7).unsqueeze(0) >= src_lengths.unsqueeze(1), PAD
    )
    return model, src, src_lengths


GRU_SEARCH = dict(alpha=1.0, max_len_a=1.5, max_len_b=3, return_attention=True)


def test_greedy_equals_beam_of_one_on_a_gru(gru_batch):
    model, src, lengths = gru_batch
    greedy_hyps = greedy(model, src, lengths, **GRU_SEARCH)
    assert_same(greedy_hyps, beam(model, src, lengths, beam_size=1, **GRU_SEARCH))
    assert len({len(hyps[0].tokens) for hyps in greedy_hyps}) > 1  # varied lengths were tested


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batched_equals_one_sentence_at_a_time_on_a_gru(gru_batch, beam_size):
    model, src, lengths = gru_batch
    settings = decoding.SearchSettings(beam_size, alpha=1.0, max_len_a=1.5, max_len_b=3)
    kwargs = dict(bos_id=BOS, eos_id=EOS, n_best=beam_size, return_attention=True)
    batched = decoding.search(model, src, lengths, settings, **kwargs)
    for b, n in enumerate(lengths.tolist()):
        alone = decoding.search(model, src[b : b + 1, :n], lengths[b : b + 1], settings, **kwargs)
        assert_same([batched[b]], alone)


def test_beam_scores_are_the_models_log_probabilities(gru_batch):
    model, src, lengths = gru_batch
    nbests = beam(model, src, lengths, beam_size=3, n_best=3, alpha=0.0, max_len_b=6)
    for b, nbest in enumerate(nbests):
        for hyp in nbest:
            tgt = torch.tensor([[BOS, *hyp.tokens, EOS]])
            with torch.no_grad():
                log_probs = model(src[b : b + 1], lengths[b : b + 1], tgt[:, :-1]).logits[0]
            expected = log_probs.gather(1, tgt[0, 1:].unsqueeze(1)).sum()
            assert hyp.log_prob == pytest.approx(float(expected))


# ------------------------------------------------------------------- helpers and boundaries


def test_select_top_k_points_at_parent_rows():
    scores = torch.tensor([[0.0, -1.0], [-0.5, -math.inf]])  # (B=2, K=2)
    log_probs = torch.tensor(
        [[-1.0, -0.1, -3.0], [-0.2, -2.0, -0.3], [-0.1, -5.0, -6.0], [0.0] * 3]
    )
    cands = decoding.select_top_k(scores, log_probs, beam_size=2)
    assert cands.scores[0].tolist() == pytest.approx([-0.1, -1.0, -1.2, -1.3])
    assert cands.rows[0].tolist() == [0, 0, 1, 1]
    assert cands.tokens[0].tolist() == [1, 0, 0, 2]
    assert cands.rows[1].tolist() == [2, 2, 2, 3]  # sentence 1's rows are 2 and 3
    assert cands.tokens[1, :3].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(beam_size=0), "beam_size"),
        (dict(beam_size=2, n_best=3), "n_best"),
        (dict(alpha=-0.5), "alpha"),
        (dict(max_len_a=-1.0), "max_len_a"),
    ],
)
def test_bad_search_arguments_are_rejected(overrides, message):
    model = ScriptedModel({1: ALWAYS_ENDS})
    with pytest.raises(ValueError, match=message):
        beam(model, *sources([1], [2]), **overrides)


def test_bad_source_shape_is_rejected():
    with pytest.raises(ValueError, match="src_lengths"):
        greedy(ScriptedModel({1: ALWAYS_ENDS}), torch.tensor([1, 4]), torch.tensor([2]))


def test_an_empty_batch_decodes_to_nothing():
    model = ScriptedModel({1: ALWAYS_ENDS})
    empty = (torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert greedy(model, *empty) == [] and beam(model, *empty) == []
    assert model.step_rows == []


def make_batch(src: Tensor, src_lengths: Tensor, indices: list[int]) -> Batch:
    tgt = torch.full((src.size(0), 1), EOS)
    return Batch(
        src, src_lengths, tgt, tgt, torch.ones(src.size(0), dtype=torch.long), torch.tensor(indices)
    )


GREEDY = decoding.SearchSettings(beam_size=1, alpha=0.0, max_len_a=0.0, max_len_b=10)
TRANSLATE_ARGS = dict(bos_id=BOS, eos_id=EOS, progress=False)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_translate_batches_returns_corpus_order(beam_size):
    model = ScriptedModel({1: GREEDY_MISSES, 2: SHORT_OR_LONG, 3: ENDS_AT_ONCE}).train()
    batches = [make_batch(*sources([2, 3], [3, 1]), [2, 0]), make_batch(*sources([1], [2]), [1])]
    settings = replace(GREEDY, beam_size=beam_size)
    ids = decoding.translate_batches(model, batches, settings, **TRANSLATE_ARGS)
    # sentence 1 follows GREEDY_MISSES, sentence 2 SHORT_OR_LONG (beam prefers "A" at alpha 0)
    expected = {1: [[A], [B, B, B]], 2: [[B], [A]]}[beam_size]
    assert ids == [[], expected[0], expected[1]]
    assert model.training  # restored after decoding in eval mode


def test_translate_batches_rejects_gaps_in_indices():
    model = ScriptedModel({1: ALWAYS_ENDS})
    batches = [make_batch(*sources([1, 1], [2, 2]), [0, 2])]
    with pytest.raises(ValueError, match="Batch.indices"):
        decoding.translate_batches(model, batches, GREEDY, **TRANSLATE_ARGS)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize("choice", ["greedy", "beam"])
def test_search_configs_drive_the_search(choice):
    overrides = [f"+search={choice}", "search.alpha=0.6", "search.max_len_b=5"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(overrides=overrides).search
    assert set(cfg) == {"beam_size", "alpha", "max_len_a", "max_len_b"}
    assert cfg.beam_size == {"greedy": 1, "beam": 5}[choice]
    assert (cfg.alpha, cfg.max_len_b) == (0.6, 5)
    model = ScriptedModel({1: GREEDY_MISSES})
    settings = decoding.SearchSettings(**cfg)
    (nbest,) = decoding.search(model, *sources([1], [2]), settings, bos_id=BOS, eos_id=EOS)
    assert nbest[0].tokens == {"greedy": [A], "beam": [B]}[choice]
