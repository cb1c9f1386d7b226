"""Every speed-up gives what the straightforward path it replaced gives, to float tolerance.

Each reference path is kept here, written the plain way, and compared on tiny models built from
the real configs: the fast path must produce the same search results, scores, attention and
gradients. Tests also check that the fast path is actually taken.
"""

from __future__ import annotations

import copy
import math
from dataclasses import fields, replace

import pytest
import support
import torch
from hydra.utils import instantiate

from seq2seq import decoding
from seq2seq.data.files import read_lines
from seq2seq.models.rnn import RNNSeq2Seq, cells, wiring
from seq2seq.models.rnn.attention import local
from seq2seq.models.rnn.state import RNNDecoderState
from seq2seq.models.sharing import select_rows, shared_rows
from seq2seq.models.transformer import Transformer, TransformerState

PAD, BOS, EOS = 0, 2, 3
VOCAB = 17
TINY_TRANSFORMER = (
    "model=transformer",
    "model.d_model=32",
    "model.num_heads=4",
    "model.ff_size=64",
    "model.num_encoder_layers=2",
    "model.num_decoder_layers=2",
)
TINY_RNN = ("model=rnn", "model.hidden_size=16", "model.embedding_size=16", "model.dropout=0.0")
SEARCH = decoding.SearchSettings(beam_size=1, alpha=1.0, max_len_a=1.5, max_len_b=3)


def build(*overrides: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = support.compose_model(*overrides)
    return instantiate(cfg, src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD).eval()


def source(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(EOS + 1, VOCAB, (len(lengths), max(lengths)), generator=generator)
    ids[torch.arange(ids.size(1)) >= torch.tensor(lengths).unsqueeze(1)] = PAD
    return ids, torch.tensor(lengths)


def assert_same_search(fast: list, reference: list) -> None:
    for fast_hyps, reference_hyps in zip(fast, reference, strict=True):
        assert [h.tokens for h in fast_hyps] == [h.tokens for h in reference_hyps]
        for f, r in zip(fast_hyps, reference_hyps):
            assert f.score == pytest.approx(r.score, abs=1e-5)
            if r.attention is not None:
                torch.testing.assert_close(f.attention, r.attention, atol=1e-5, rtol=0)


# ------------------------------------------------ source rows shared by a sentence's hypotheses


def test_shared_rows_finds_equal_runs_and_falls_back_to_one_row_each():
    rows, group = shared_rows(torch.tensor([0, 0, 0, 2, 2, 2]))
    assert rows.tolist() == [0, 2] and group == 3
    rows, group = shared_rows(torch.tensor([1, 1, 0, 0, 0]))  # runs of unequal length
    assert rows.tolist() == [1, 1, 0, 0, 0] and group == 1
    rows, group = shared_rows(torch.tensor([0, 1, 0]))  # a row coming back later
    assert rows.tolist() == [0, 1, 0] and group == 1
    assert shared_rows(torch.tensor([], dtype=torch.long))[1] == 1


def test_select_rows_copies_only_when_rows_change():
    x = torch.arange(12.0).view(3, 4)
    assert select_rows(x, 0, torch.tensor([0, 1, 2])) is x
    assert select_rows(x, 0, torch.tensor([2, 0])).tolist() == [x[2].tolist(), x[0].tolist()]


class EveryRowState(TransformerState):
    """The straightforward path that shared source rows replace: every tensor of the state,
    source keys/values included, is copied to follow the hypotheses at every reorder."""

    def reorder(self, indices: torch.Tensor) -> EveryRowState:
        return EveryRowState(
            self_kv=tuple(kv.index_select(1, indices) for kv in self.self_kv),
            cross_kv=tuple(kv.index_select(1, indices) for kv in self.cross_kv),
            src_mask=self.src_mask.index_select(0, indices),
            position=self.position,
        )


class EveryRowRNNState(RNNDecoderState):
    """The straightforward path for the RNN: the encoder memory follows every reorder."""

    def reorder(self, indices: torch.Tensor) -> EveryRowRNNState:
        return EveryRowRNNState(
            hidden=self.hidden.index_select(1, indices),
            memory=self.memory.reorder(indices),
            feed=None if self.feed is None else self.feed.index_select(0, indices),
            step=self.step,
        )


def copying_every_row(model: Transformer | RNNSeq2Seq) -> Transformer | RNNSeq2Seq:
    """The same weights, with states that copy every row."""
    reference = copy.deepcopy(model)
    fast_init_state = type(model).init_state
    state_type = EveryRowState if isinstance(model, Transformer) else EveryRowRNNState
    reference.init_state = lambda encoded: state_type(
        **fields_of(fast_init_state(reference, encoded))
    )
    return reference


def fields_of(state: TransformerState | RNNDecoderState) -> dict:
    return {field.name: getattr(state, field.name) for field in fields(state)}


@pytest.mark.parametrize("beam_size", [1, 3])
def test_transformer_search_with_shared_source_rows_equals_copying_every_row(beam_size):
    model = build(*TINY_TRANSFORMER)
    src, lengths = source([7, 3, 5, 1])  # sentences end at different steps and leave the batch
    settings = replace(SEARCH, beam_size=beam_size)
    kwargs = dict(bos_id=BOS, eos_id=EOS, n_best=beam_size, return_attention=True)
    fast = decoding.search(model, src, lengths, settings, **kwargs)
    reference = decoding.search(copying_every_row(model), src, lengths, settings, **kwargs)
    assert_same_search(fast, reference)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_local_m"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_rnn_search_with_memory_kept_within_sentences_equals_copying_every_row(
    attention, beam_size
):
    model = build(*TINY_RNN, f"model/attention={attention}")
    src, lengths = source([7, 3, 5, 1])
    settings = replace(SEARCH, beam_size=beam_size)
    kwargs = dict(bos_id=BOS, eos_id=EOS, n_best=beam_size, return_attention=True)
    fast = decoding.search(model, src, lengths, settings, **kwargs)
    reference = decoding.search(copying_every_row(model), src, lengths, settings, **kwargs)
    assert_same_search(fast, reference)


def test_rnn_beams_reordered_within_sentences_keep_their_memory():
    model = build(*TINY_RNN, "model/attention=bahdanau")
    src, lengths = source([4, 6])
    with torch.no_grad():
        beams = model.init_state(model.encode(src, lengths)).reorder(
            torch.tensor([0, 0, 0, 1, 1, 1])
        )
        followed = beams.reorder(torch.tensor([2, 0, 0, 5, 3, 4]))
        assert followed.group == 3 and followed.memory is beams.memory
        dropped = followed.reorder(torch.tensor([3, 4, 4]))  # the first sentence ended
        assert dropped.group == 3 and dropped.memory.values.size(0) == 3
        torch.testing.assert_close(dropped.memory.values, beams.memory.values[3:])


def test_transformer_beams_reordered_within_sentences_copy_no_source_rows():
    model = build(*TINY_TRANSFORMER)
    src, lengths = source([4, 6])
    with torch.no_grad():
        state = model.init_state(model.encode(src, lengths))
        beams = state.reorder(torch.tensor([0, 0, 0, 1, 1, 1]))  # K = 3 copies of each
        assert beams.group == 3 and beams.cross_kv[0] is state.cross_kv[0]
        followed = beams.reorder(torch.tensor([2, 0, 0, 5, 3, 4]))
        assert followed.group == 3 and followed.cross_kv[0] is state.cross_kv[0]
        dropped = followed.reorder(torch.tensor([3, 4, 4]))  # the first sentence ended
        assert dropped.group == 3 and dropped.src_mask.size(0) == 1
        torch.testing.assert_close(dropped.cross_kv[0], state.cross_kv[0][:, 1:])


# ------------------------------------------------------------- RNN teacher forcing, backward


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_local_p"])
def test_rnn_teacher_forcing_gradients_equal_the_step_loop(attention):
    """forward() walks its inputs through one split instead of T slices; its gradients must be
    those of T plain `step` calls."""
    model = build(*TINY_RNN, f"model/attention={attention}")
    src, lengths = source([5, 3, 4])
    tgt_in, _ = source([6, 6, 6], seed=2)
    tgt_in[:, 0] = BOS
    weights = torch.randn(3, 6, VOCAB, generator=torch.Generator().manual_seed(3))
    parameters = [p for p in model.parameters() if p.requires_grad]

    fast = (model(src, lengths, tgt_in).logits.log_softmax(-1) * weights).sum()
    state, steps = model.init_state(model.encode(src, lengths)), []
    for t in range(tgt_in.size(1)):
        out = model.step(tgt_in[:, t], state)
        steps.append(out.log_probs)
        state = out.state
    reference = (torch.stack(steps, dim=1) * weights).sum()

    fast_grads = torch.autograd.grad(fast, parameters, allow_unused=True)
    reference_grads = torch.autograd.grad(reference, parameters, allow_unused=True)
    for f, r in zip(fast_grads, reference_grads, strict=True):
        assert (f is None) == (r is None)
        if f is not None:
            torch.testing.assert_close(f, r, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------- beam search itself


def plain_beam_search(model, src, length: int, beam_size: int) -> list[tuple[list[int], float]]:
    """The search of seq2seq/decoding.py written the plain way for one sentence: K copies of the
    start state scored from the first step on (the first one with log-probability 0, the others
    -inf), every candidate ranked in Python. Returns (tokens, normalised score), best first."""
    max_len = math.floor(SEARCH.max_len_a * length + SEARCH.max_len_b)
    state = model.init_state(model.encode(src[None, :length], torch.tensor([length])))
    state = state.reorder(torch.zeros(beam_size, dtype=torch.long))
    beams = [([], 0.0)] + [([], -math.inf)] * (beam_size - 1)
    finished = []
    for t in range(max_len + 1):
        prev = torch.tensor([tokens[-1] if tokens else BOS for tokens, _ in beams])
        out = model.step(prev, state)
        log_probs = out.log_probs.double()
        if t == max_len:  # only EOS, at the model's (floored) log-probability
            eos = log_probs[:, EOS].clamp(min=torch.finfo(torch.float32).min)
            log_probs = torch.full_like(log_probs, -math.inf)
            log_probs[:, EOS] = eos
        candidates = sorted(
            (
                (score + float(log_probs[k, v]), k, v)
                for k, (_, score) in enumerate(beams)
                for v in range(log_probs.size(1))
            ),
            key=lambda c: -c[0],
        )[: 2 * beam_size]
        for score, k, v in candidates[:beam_size]:
            if v == EOS and math.isfinite(score):
                tokens = beams[k][0]
                finished.append((tokens, score / ((5 + len(tokens) + 1) / 6) ** SEARCH.alpha))
        alive = [c for c in candidates if c[2] != EOS][:beam_size]
        if len(finished) >= beam_size or t == max_len or not math.isfinite(alive[0][0]):
            break
        state = out.state.reorder(torch.tensor([k for _, k, _ in alive]))
        beams = [(beams[k][0] + [v], score) for score, k, v in alive]
    return sorted(finished, key=lambda h: -h[1])[:beam_size]


@pytest.mark.parametrize(
    "model_overrides", [TINY_RNN, TINY_TRANSFORMER], ids=["rnn", "transformer"]
)
def test_beam_search_equals_the_plain_search(model_overrides):
    """The batched search (one row per sentence at the first step, finished sentences leaving
    the batch, shared source rows) finds what the plain one finds, sentence by sentence."""
    model = build(*model_overrides)
    src, lengths = source([7, 3, 5, 1, 6])
    with torch.no_grad():
        settings = replace(SEARCH, beam_size=3)
        batched = decoding.beam_search(
            model, src, lengths, settings, bos_id=BOS, eos_id=EOS, n_best=3
        )
        for i, length in enumerate(lengths.tolist()):
            plain = plain_beam_search(model, src[i], length, beam_size=3)
            assert [h.tokens for h in batched[i]] == [tokens for tokens, _ in plain]
            assert [h.score for h in batched[i]] == pytest.approx([s for _, s in plain], abs=1e-4)


# ------------------------------------------------ RNN teacher forcing, the fused GRU loop


@pytest.mark.parametrize(
    "attention",
    ["bahdanau", "bahdanau_coverage", "luong_general", "luong_local_p", "luong_local_m"],
)
def test_rnn_fused_teacher_forcing_equals_the_stepwise_loop(attention, monkeypatch):
    """The fused loop (input-side gate products hoisted out of the time loop, context products
    moved onto pre-projected encoder outputs, nn.GRU's equations written out) gives the loss,
    gradients and attention of the nn.GRU loop it replaces, dropout masks included."""
    model = build(
        "model=rnn",
        "model.hidden_size=16",
        "model.embedding_size=16",
        "model.dropout=0.3",
        f"model/attention={attention}",
    ).train()
    src, lengths = source([5, 3, 4, 7])
    tgt_in, _ = source([6, 2, 4, 5], seed=2)  # padded targets, as in real batches
    tgt_in[:, 0] = BOS
    weights = torch.randn(4, 6, VOCAB, generator=torch.Generator().manual_seed(3))
    parameters = [p for p in model.parameters() if p.requires_grad]
    steps = []
    monkeypatch.setattr(wiring, "gru_step", counting(wiring.gru_step, steps))

    def run(fused: bool) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        model.decoder.fused = fused
        torch.manual_seed(5)
        out = model(src, lengths, tgt_in, return_attention=True)
        loss = (out.logits.log_softmax(-1) * weights).sum()
        return loss, torch.autograd.grad(loss, parameters, allow_unused=True), out.attention

    reference_loss, reference_grads, reference_attention = run(fused=False)
    assert not steps
    fast_loss, fast_grads, fast_attention = run(fused=True)
    assert len(steps) == tgt_in.size(1)  # the fused path was taken, once per target step
    torch.testing.assert_close(fast_loss, reference_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_attention, reference_attention, atol=1e-6, rtol=1e-5)
    for f, r in zip(fast_grads, reference_grads, strict=True):
        assert (f is None) == (r is None)
        if f is not None:
            torch.testing.assert_close(f, r, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_local_p"])
def test_rnn_fused_teacher_forcing_under_bf16_autocast_follows_the_stepwise_loop(attention):
    """Under bf16 autocast (training on CPUs with bf16 and on CUDA) the fused loop casts the
    weight slices it uses at every step once (cells.cast_for_loop); its loss and gradients stay
    those of the nn.GRU loop within bf16's precision."""
    model = build(
        "model=rnn",
        "model.hidden_size=32",
        "model.embedding_size=32",
        f"model/attention={attention}",
    ).train()
    src, lengths = source([5, 3, 4, 7])
    tgt_in, _ = source([6, 2, 4, 5], seed=2)
    tgt_in[:, 0] = BOS
    parameters = [p for p in model.parameters() if p.requires_grad]

    def run(fused: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.decoder.fused = fused
        torch.manual_seed(5)  # the same dropout masks
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(src, lengths, tgt_in).logits
        loss = logits.float().log_softmax(-1)[..., EOS].sum()
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        return loss, [g.flatten() for g in grads if g is not None]

    reference_loss, reference_grads = run(fused=False)
    fast_loss, fast_grads = run(fused=True)
    torch.testing.assert_close(fast_loss, reference_loss, rtol=2e-2, atol=0.0)
    for f, r in zip(fast_grads, reference_grads, strict=True):
        assert torch.cosine_similarity(f.float(), r.float(), dim=0) > 0.99


def test_cast_for_loop_casts_only_under_autocast():
    weight = torch.randn(4, 3, requires_grad=True)
    assert cells.cast_for_loop(weight) is weight
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = cells.cast_for_loop(weight[:, 1:].t())
    assert cast.dtype == torch.bfloat16 and cast.shape == (2, 4)
    cast.float().sum().backward()  # the gradient reaches the float32 parameter
    assert weight.grad.dtype == torch.float32 and weight.grad[:, 0].eq(0).all()


@pytest.mark.parametrize("score", ["general", "concat"])
@pytest.mark.parametrize("attention", ["luong_local_p", "luong_local_m"])
@pytest.mark.parametrize("wiring_overrides", [(), ("model.decoder.wiring=bahdanau",)])
def test_local_attention_over_a_whole_short_source_equals_the_gathered_window(
    attention, score, wiring_overrides, monkeypatch
):
    """Sources no longer than twice the window are scored whole and the context is one product
    with the scattered weights; loss, gradients, attention and centres are those of the
    gathered windows (padded batches; windows clipped at both ends of the sentences)."""
    model = build(
        *TINY_RNN,
        "model.dropout=0.3",
        f"model/attention={attention}",
        f"model.attention.score={score}",
        "model.attention.half_width=2",  # W = 5: sources of 7 fit twice, clipped windows
        *wiring_overrides,
    ).train()
    src, lengths = source([5, 3, 4, 7])
    tgt_in, _ = source([6, 2, 4, 5], seed=2)
    tgt_in[:, 0] = BOS
    weights = torch.randn(4, 6, VOCAB, generator=torch.Generator().manual_seed(3))
    parameters = [p for p in model.parameters() if p.requires_grad]
    gathered = []
    monkeypatch.setattr(local, "gather_window", counting(local.gather_window, gathered))

    def run(whole: bool) -> tuple[torch.Tensor, tuple, torch.Tensor, torch.Tensor]:
        model.decoder.attention.whole_short_sources = whole
        torch.manual_seed(5)
        out = model(src, lengths, tgt_in, return_attention=True)
        loss = (out.logits.log_softmax(-1) * weights).sum()
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        return loss, grads, out.attention, out.attention_centers

    reference = run(whole=False)
    assert gathered
    gathered.clear()
    fast = run(whole=True)
    assert not gathered  # the whole-source path was taken at every step
    torch.testing.assert_close(fast[0], reference[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[2], reference[2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast[3], reference[3], atol=1e-6, rtol=1e-5)
    for f, r in zip(fast[1], reference[1], strict=True):
        assert (f is None) == (r is None)
        if f is not None:
            torch.testing.assert_close(f, r, atol=1e-5, rtol=1e-4)


def test_local_attention_gathers_the_window_of_a_long_source(monkeypatch):
    model = build(*TINY_RNN, "model/attention=luong_local_p", "model.attention.half_width=1")
    gathered = []
    monkeypatch.setattr(local, "gather_window", counting(local.gather_window, gathered))
    src, lengths = source([5, 3, 4, 7])  # 7 > 2W = 6
    model(src, lengths, torch.full((4, 2), BOS))
    assert len(gathered) == 2 * 2  # keys and values at each of the 2 steps


@pytest.mark.parametrize(
    "overrides",
    [("model.cell=lstm",), ("model.num_decoder_layers=2",), ("model/attention=multihead",)],
    ids=["lstm", "two-layers", "multihead"],
)
def test_rnn_teacher_forcing_keeps_the_stepwise_loop_where_fusing_does_not_apply(overrides):
    model = build(*TINY_RNN, *overrides)
    assert not model.decoder._fusable()
    assert build(*TINY_RNN).decoder._fusable()


def counting(function, calls: list):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


# ------------------------------------------------------ training scores real positions only


@pytest.mark.parametrize(
    "model_overrides", [TINY_RNN, TINY_TRANSFORMER], ids=["rnn", "transformer"]
)
def test_loss_over_scored_positions_equals_the_loss_over_padded_logits(model_overrides):
    """The trainer asks for logits at the real target positions only (`positions`); its loss
    and gradients are those of all (B, T) logits with the padding ignored, label smoothing
    included."""
    model = build(*model_overrides).train()
    src, lengths = source([5, 3, 4])
    tgt_out, _ = source([6, 2, 4], seed=2)  # padded targets, as in real batches
    tgt_in = torch.cat([torch.full((3, 1), BOS), tgt_out[:, :-1]], dim=1)
    scored = tgt_out != PAD
    parameters = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(positions):
        torch.manual_seed(5)  # the same dropout masks
        logits = model(src, lengths, tgt_in, positions=positions).logits
        if positions is None:
            logits, targets = logits.flatten(0, 1), tgt_out.flatten()
        else:
            assert logits.shape == (int(scored.sum()), VOCAB)
            targets = tgt_out[scored]
        loss = torch.nn.functional.cross_entropy(
            logits, targets, ignore_index=PAD, label_smoothing=0.1, reduction="sum"
        )
        return loss, torch.autograd.grad(loss, parameters, allow_unused=True)

    reference_loss, reference_grads = loss_and_grads(None)
    fast_loss, fast_grads = loss_and_grads(scored)
    torch.testing.assert_close(fast_loss, reference_loss, atol=1e-5, rtol=1e-5)
    for f, r in zip(fast_grads, reference_grads, strict=True):
        assert (f is None) == (r is None)
        if f is not None:
            torch.testing.assert_close(f, r, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------- beam search's top-k of a step


def flat_select_top_k(scores, log_probs, beam_size: int) -> decoding._Candidates:
    """The straightforward ranking that the two-stage one replaced: every hypothesis' score
    added to its whole row of log-probabilities, then one top-k over the sentence's k·V sums."""
    sentences, hypotheses = scores.shape
    vocab = log_probs.size(1)
    extended = scores.unsqueeze(2) + log_probs.view(sentences, hypotheses, vocab)
    top, flat = extended.view(sentences, -1).topk(min(2 * beam_size, hypotheses * vocab), dim=1)
    offsets = torch.arange(sentences).unsqueeze(1) * hypotheses
    return decoding._Candidates(top, offsets + flat // vocab, flat % vocab)


def test_top_k_rows_equals_torch_topk():
    log_probs = torch.randn(60, 8000, generator=torch.Generator().manual_seed(0)).log_softmax(1)
    log_probs[7] = -math.inf  # a row at its length limit: only EOS is finite
    log_probs[7, EOS] = -3.0
    values, columns = decoding.top_k_rows(log_probs, 10)
    reference = log_probs.topk(10, dim=1)
    assert torch.equal(values, reference.values)
    finite = torch.isfinite(reference.values)  # which -inf column comes first is arbitrary
    assert torch.equal(columns[finite], reference.indices[finite])
    assert decoding._block_count(8000, 10) == 1000 and decoding._block_count(17, 10) is None


def multi30k_words(count: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` German sentences of test2016 as word ids (a vocabulary of their own)."""
    path = support.MULTI30K / "test_2016_flickr.de.gz"
    if not path.is_file():
        support.missing_data(f"the offline Multi30k copy is not at {support.MULTI30K}")
    sentences = [line.split() for line in read_lines(path)[:count]]
    ids = {word: i for i, word in enumerate(dict.fromkeys(sum(sentences, [])), start=EOS + 1)}
    assert len(ids) < vocab - EOS
    rows = [torch.tensor([ids[w] for w in words]) for words in sentences]
    src = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=PAD)
    return src, torch.tensor([len(r) for r in rows])


def test_beam_search_on_multi30k_finds_what_the_flat_top_k_finds(monkeypatch):
    """The two-stage, blockwise top-k gives beam search the same n-best lists, token for token
    and score for score, as ranking every extension: real sentences, a vocabulary that takes the
    block path, beam 5 and the search config of `make bench`."""
    vocab = 2000  # 250 blocks of 8 columns
    torch.manual_seed(0)
    cfg = support.compose_model(*TINY_TRANSFORMER)
    model = instantiate(cfg, src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=PAD).eval()
    src, lengths = multi30k_words(24, vocab)
    settings = decoding.SearchSettings(**support.compose_config("train", "search.alpha=1.0").search)
    assert settings.beam_size == 5
    kwargs = dict(bos_id=BOS, eos_id=EOS, n_best=5)
    fast = decoding.beam_search(model, src, lengths, settings, **kwargs)
    monkeypatch.setattr(decoding, "select_top_k", flat_select_top_k)
    plain = decoding.beam_search(model, src, lengths, settings, **kwargs)
    assert [[(h.tokens, h.score) for h in hyps] for hyps in fast] == [
        [(h.tokens, h.score) for h in hyps] for hyps in plain
    ]


# --------------------------------------------------------------- the optimiser's fused step


@pytest.mark.parametrize("optim", ["adam", "adam_transformer", "adamw"])
def test_fused_adam_steps_as_the_for_loop_adam(optim):
    """configs/optim's fused step (one kernel per parameter) moves a model's weights as the
    for-loop Adam does, over several updates with real gradients."""
    settings = support.compose_config("train", f"optim={optim}").optim
    assert settings.fused
    models = [build(*TINY_RNN).train() for _ in range(2)]
    optimizers = [
        instantiate(settings, fused=fused)(m.parameters())
        for m, fused in zip(models, [True, False])
    ]
    src, lengths = source([5, 3, 4])
    tgt_in, _ = source([6, 2, 4], seed=2)
    for _ in range(3):
        for model, optimizer in zip(models, optimizers, strict=True):
            optimizer.zero_grad()
            model(src, lengths, tgt_in).logits.logsumexp(-1).sum().backward()
            optimizer.step()
    for fused, plain in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(fused, plain, atol=1e-6, rtol=1e-5)
    assert any(
        not torch.equal(p, q) for p, q in zip(models[0].parameters(), build(*TINY_RNN).parameters())
    )
