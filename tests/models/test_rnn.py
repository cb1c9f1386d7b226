"""The RNN encoder-decoder with every attention variant and both decoder wirings.

Models are the composed Hydra config (configs/model/rnn.yaml + model/attention=<variant>) shrunk
to 16 hidden units and a 20-token vocabulary; variants are the files in configs/model/attention/,
so a new one is tested without editing this file.
"""

from __future__ import annotations

import contextlib
import random
import re

import pytest
import support
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq import variants
from seq2seq.models.rnn import RNNEncoder, RNNSeq2Seq
from seq2seq.models.rnn.attention import LuongGeneralAttention
from seq2seq.models.rnn.wiring import BahdanauWiring, LuongWiring

VARIANTS = variants.attention_names()
VOCAB, PAD, BOS, EOS = 20, 0, 2, 3
TINY = ("model.hidden_size=16", "model.embedding_size=16", "model.dropout=0.0")
# (wiring, input feeding): Bahdanau's, and Luong's with and without input feeding
WIRINGS = [("bahdanau", True), ("luong", True), ("luong", False)]


def rnn_config(variant: str, *overrides: str) -> DictConfig:
    return support.compose_model("model=rnn", f"model/attention={variant}", *overrides)


def build(
    variant: str, *overrides: str, seed: int = 0, vocab: int = VOCAB, half_width: int | None = 2
) -> RNNSeq2Seq:
    """A tiny model; local windows shrink to D = 2 so they are narrower than the sentences."""
    cfg = rnn_config(variant, *TINY, *overrides).copy()
    if half_width is not None and "half_width" in cfg.attention:
        cfg.attention.half_width = half_width
    torch.manual_seed(seed)
    return instantiate(cfg, src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=PAD)


@contextlib.contextmanager
def raises_value_error(message: str):
    """A ValueError matching `message`, raised directly or inside Hydra's instantiate."""
    with pytest.raises((ValueError, InstantiationException)) as info:
        yield
    error = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert isinstance(error, ValueError), repr(info.value)
    assert re.search(message, str(error)), f"{message!r} not in {error}"


def wiring_overrides(wiring: str, input_feeding: bool) -> tuple[str, ...]:
    return (f"model.decoder.wiring={wiring}", f"model.decoder.input_feeding={input_feeding}")


def padded(lengths: list[int], seed: int, bos: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(EOS + 1, VOCAB, (len(lengths), max(lengths)), generator=generator)
    if bos:
        tokens[:, 0] = BOS
    for row, length in enumerate(lengths):
        tokens[row, length:] = PAD
    return tokens


def batch(src_lengths: list[int], tgt_lengths: list[int]):
    src = padded(src_lengths, seed=1)
    return src, torch.tensor(src_lengths), padded(tgt_lengths, seed=2, bos=True)


def run_steps(model: RNNSeq2Seq, state, tokens: torch.Tensor):
    """Feed tokens (B, T) one step at a time: log-probs (B, T, V), attention (B, T, S), state."""
    log_probs, attention = [], []
    for t in range(tokens.size(1)):
        out = model.step(tokens[:, t], state, return_attention=True)
        log_probs.append(out.log_probs)
        attention.append(out.attention)
        state = out.state
    return torch.stack(log_probs, 1), torch.stack(attention, 1), state


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("wiring", "input_feeding"), WIRINGS)
def test_forward_equals_step_by_step(variant, wiring, input_feeding):
    model = build(variant, *wiring_overrides(wiring, input_feeding)).eval()
    src, src_lengths, tgt_in = batch([7, 4, 1], [9, 3, 6])
    with torch.no_grad():
        out = model(src, src_lengths, tgt_in, return_attention=True)
        state = model.init_state(model.encode(src, src_lengths))
        log_probs, attention, _ = run_steps(model, state, tgt_in)
    torch.testing.assert_close(out.logits.log_softmax(-1), log_probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.attention, attention, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("wiring", "input_feeding"), WIRINGS)
def test_stacked_lstm_forward_equals_step_by_step(wiring, input_feeding):
    overrides = ("model.cell=lstm", "model.num_encoder_layers=2", "model.num_decoder_layers=2")
    model = build("luong_local_p", *overrides, *wiring_overrides(wiring, input_feeding)).eval()
    src, src_lengths, tgt_in = batch([6, 2], [5, 7])
    with torch.no_grad():
        out = model(src, src_lengths, tgt_in)
        log_probs, _, _ = run_steps(model, model.init_state(model.encode(src, src_lengths)), tgt_in)
    torch.testing.assert_close(out.logits.log_softmax(-1), log_probs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_equals_each_sentence_alone(variant):
    model = build(variant).eval()
    src_lengths, tgt_lengths = [3, 8, 5], [6, 2, 9]
    src, src_len, tgt_in = batch(src_lengths, tgt_lengths)
    with torch.no_grad():
        together = model(src, src_len, tgt_in, return_attention=True)
        for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
            alone = model(src[i : i + 1, :s], src_len[i : i + 1], tgt_in[i : i + 1, :t], True)
            torch.testing.assert_close(together.logits[i, :t], alone.logits[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(together.attention[i, :t, :s], alone.attention[0])
            assert (together.attention[i, :, s:] == 0).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_reordered_state_continues_like_a_fresh_run(variant):
    model = build(variant).eval()
    src, src_lengths, tgt_in = batch([5, 8, 2], [7, 7, 7])
    indices = torch.tensor([2, 0, 0, 1])  # beam search both drops and duplicates hypotheses
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_lengths))
        _, _, state = run_steps(model, state, tgt_in[:, :3])
        continued, attention, _ = run_steps(model, state.reorder(indices), tgt_in[indices, 3:])
        fresh_state = model.init_state(model.encode(src[indices], src_lengths[indices]))
        fresh, fresh_attention, _ = run_steps(model, fresh_state, tgt_in[indices])
    torch.testing.assert_close(continued, fresh[:, 3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(attention, fresh_attention[:, 3:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("wiring", "input_feeding"), WIRINGS)
def test_gradients_reach_every_parameter(variant, wiring, input_feeding):
    model = build(variant, *wiring_overrides(wiring, input_feeding), "model.cell=lstm")
    src, src_lengths, tgt_in = batch([7, 4, 1], [9, 3, 6])
    model(src, src_lengths, tgt_in).logits.logsumexp(-1).sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not silent, f"no gradient reaches {silent}"


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_one_head_is_bit_for_bit_the_plain_score(score):
    """multihead with heads=1 builds no projections: the same parameters in the same order as
    luong_<score>, so the same seed gives the same outputs and gradients, bit for bit."""
    encoder = ("model.bidirectional=false",) if score == "dot" else ()
    plain = build(f"luong_{score}", *encoder)
    one_head = build(
        "multihead", f"model.attention.score={score}", "model.attention.heads=1", *encoder
    )
    src, src_lengths, tgt_in = batch([7, 4, 1], [9, 3, 6])
    outputs = []
    for model in (plain, one_head):
        out = model(src, src_lengths, tgt_in, return_attention=True)
        out.logits.logsumexp(-1).sum().backward()
        grads = [p.grad for p in model.parameters()]
        outputs.append((out.logits, out.attention, *grads))
    assert len(outputs[0]) == len(outputs[1])
    assert all(torch.equal(a, b) for a, b in zip(*outputs, strict=True))


def greedy(model: RNNSeq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, steps: int):
    state = model.init_state(model.encode(src, src_lengths))
    tokens, outputs = torch.full((src.size(0),), BOS), []
    for _ in range(steps):
        out = model.step(tokens, state)
        tokens, state = out.log_probs.argmax(-1), out.state
        outputs.append(tokens)
    return torch.stack(outputs, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_two_sentence_batch_overfits(variant):
    model = build(variant, seed=3)
    src, src_lengths, tgt_in = batch([6, 4], [5, 7])
    tgt_out = torch.cat([tgt_in[:, 1:], torch.full((2, 1), PAD)], 1)
    tgt_out[0, 4], tgt_out[1, 6] = EOS, EOS  # target + EOS, shifted from BOS + target
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        logits = model(src, src_lengths, tgt_in).logits
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        decoded = greedy(model, src, src_lengths, steps=7)
    assert loss.item() < 0.05
    assert decoded[0, :5].tolist() == tgt_out[0, :5].tolist()
    assert decoded[1].tolist() == tgt_out[1].tolist()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_padding_never_enters_the_recurrence(cell):
    torch.manual_seed(0)
    encoder = RNNEncoder(
        cell=cell, input_size=8, hidden_size=6, num_layers=2, bidirectional=True, dropout=0.0
    )
    embedded = torch.randn(3, 7, 8)
    lengths = torch.tensor([7, 2, 5])
    outputs, final = encoder(embedded, lengths)
    assert outputs.shape == (3, 7, 12) and final.shape == (3, 12)
    for i, length in enumerate(lengths.tolist()):
        alone_outputs, alone_final = encoder(embedded[i : i + 1, :length], lengths[i : i + 1])
        torch.testing.assert_close(outputs[i, :length], alone_outputs[0])
        torch.testing.assert_close(final[i], alone_final[0])
        assert (outputs[i, length:] == 0).all()
    # the backward half of the final state is the backward RNN's state at position 0
    torch.testing.assert_close(final[:, 6:], outputs[:, 0, 6:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_attention_file_sets_its_papers_wiring(variant):
    model = build(variant)
    expected = BahdanauWiring if variant.startswith("bahdanau") else LuongWiring
    assert type(model.decoder) is expected


def test_command_line_wiring_overrides_the_attention_files():
    model = build("luong_general", "model.decoder.wiring=bahdanau")
    assert type(model.decoder) is BahdanauWiring
    assert type(model.decoder.attention) is LuongGeneralAttention
    assert type(build("bahdanau", "model.decoder.wiring=luong").decoder) is LuongWiring


def test_default_config_matches_the_joeynmt_reference():
    cfg = rnn_config("bahdanau")
    assert (cfg.cell, cfg.hidden_size, cfg.embedding_size, cfg.dropout) == ("gru", 256, 256, 0.2)
    assert (cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.bidirectional) == (1, 1, True)
    assert cfg.decoder.input_feeding is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.decoder.wiring=fancy",), r"\['bahdanau', 'luong'\]"),
        (("model.decoder.wiring=bahdanau", "model.decoder.input_feeding=false"), "luong"),
        (("model.cell=rnn",), r"\['gru', 'lstm'\]"),
        (("model.tie_output=true", "model.embedding_size=8"), "tie_output"),
    ],
)
def test_bad_options_raise_naming_the_key(overrides, message):
    with raises_value_error(message):
        build("luong_general", *overrides)


def test_luong_dot_with_a_bidirectional_encoder_raises():
    with raises_value_error("model.bidirectional=false"):
        build("luong_dot", "model.bidirectional=true")


def test_shared_and_tied_embeddings():
    model = build("bahdanau", "model.share_embeddings=true", "model.tie_output=true")
    assert model.src_embed is model.tgt_embed
    assert model.output_layer.weight is model.tgt_embed.weight
    cfg = rnn_config("bahdanau", *TINY, "model.share_embeddings=true")
    with raises_value_error("src_vocab_size=20 != tgt_vocab_size=21"):
        instantiate(cfg, src_vocab_size=20, tgt_vocab_size=21, pad_id=PAD)


@pytest.mark.parametrize("lengths", [[3, 0], [3, 9], [3]])
def test_bad_source_lengths_raise(lengths):
    model = build("bahdanau")
    with pytest.raises(ValueError, match="src_lengths"):
        model.encode(padded([3, 2], seed=0), torch.tensor(lengths))


@pytest.mark.parametrize(
    "variant",
    [
        "bahdanau",
        "luong_local_p",
        "luong_local_topk",
        "bahdanau_coverage",
        "luong_general_entmax15",
    ],
)
def test_bf16_autocast_runs_forward_and_step(variant):
    model = build(variant).eval()
    src, src_lengths, tgt_in = batch([5, 3], [4, 6])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, src_lengths, tgt_in).logits
        log_probs, _, _ = run_steps(model, model.init_state(model.encode(src, src_lengths)), tgt_in)
    assert torch.isfinite(logits).all() and torch.isfinite(log_probs).all()
    torch.testing.assert_close(logits.float().log_softmax(-1), log_probs, atol=0.1, rtol=0)


@pytest.mark.parametrize("wiring", ["bahdanau", "luong"])
def test_attention_query_is_the_papers_decoder_state(wiring):
    """Bahdanau scores with s_{t-1}, the state before the step; Luong with h_t, after it."""
    model = build("luong_general", f"model.decoder.wiring={wiring}").eval()
    attention, queries = model.decoder.attention, []
    attend = attention.forward

    def recording_forward(query, memory, step=0, state=None):
        queries.append(query.squeeze(1))
        return attend(query, memory, step, state)

    attention.forward = recording_forward
    src, src_lengths, tgt_in = batch([5, 3], [4, 4])
    state, before, after = model.init_state(model.encode(src, src_lengths)), [], []
    with torch.no_grad():
        for t in range(tgt_in.size(1)):
            before.append(state.hidden[-1])
            state = model.step(tgt_in[:, t], state).state
            after.append(state.hidden[-1])
    expected = before if wiring == "bahdanau" else after
    torch.testing.assert_close(torch.stack(queries), torch.stack(expected))
    assert not torch.allclose(torch.stack(before), torch.stack(after))


@pytest.mark.parametrize("input_feeding", [True, False])
def test_luong_input_feeding_feeds_the_attentional_state(input_feeding):
    model = build("luong_general", f"model.decoder.input_feeding={input_feeding}").eval()
    embedding_size, hidden_size = model.tgt_embed.embedding_dim, model.decoder.output_size
    expected_input = embedding_size + (hidden_size if input_feeding else 0)
    assert model.decoder.rnn.input_size == expected_input
    src, src_lengths, tgt_in = batch([5, 3], [4, 4])
    state = model.init_state(model.encode(src, src_lengths))
    with torch.no_grad():
        h_tilde, state, _ = model.decoder.step(model.tgt_embed(tgt_in[:, :1]), state)
    if input_feeding:
        torch.testing.assert_close(state.feed, h_tilde)  # h~_t goes into step t + 1
    else:
        assert state.feed is None


class ToyTask:
    """Sentences of 3..15 symbols from a 20-symbol alphabet; the target reverses or copies.

    `held_out` sentences never appear in training samples.
    """

    def __init__(self, reverse: bool, seed: int, held_out: int = 300) -> None:
        self.reverse, self.rng = reverse, random.Random(seed)
        self.held_out: list[list[int]] = []
        self.held_out = self.sample(held_out)

    def sample(self, size: int) -> list[list[int]]:
        symbols, reserved, sentences = range(EOS + 1, EOS + 21), set(map(tuple, self.held_out)), []
        while len(sentences) < size:
            sentence = self.rng.choices(symbols, k=self.rng.randint(3, 15))
            if tuple(sentence) not in reserved:
                sentences.append(sentence)
        return sentences

    def batch(self, sources: list[list[int]]):
        targets = [s[::-1] if self.reverse else s for s in sources]
        src = torch.zeros(len(sources), 15, dtype=torch.long)
        tgt_in, tgt_out = torch.zeros(2, len(sources), 16, dtype=torch.long)
        for i, (s, t) in enumerate(zip(sources, targets)):
            src[i, : len(s)] = torch.tensor(s)
            tgt_in[i, : len(t) + 1] = torch.tensor([BOS, *t])
            tgt_out[i, : len(t) + 1] = torch.tensor([*t, EOS])
        return src, torch.tensor([len(s) for s in sources]), tgt_in, tgt_out


def exact_match(model: RNNSeq2Seq, task: ToyTask, sources: list[list[int]]) -> float:
    src, src_lengths, _, tgt_out = task.batch(sources)
    model.eval()
    with torch.no_grad():
        decoded = greedy(model, src, src_lengths, steps=16)
    model.train()
    hits = [decoded[i, : len(s) + 1].equal(tgt_out[i, : len(s) + 1]) for i, s in enumerate(sources)]
    return sum(hits) / len(hits)


# local-m's p_t = t assumes a monotonic alignment, so it is judged on copying, not reversing
SLOW_TASKS = [(v, v != "luong_local_m") for v in VARIANTS]


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "reverse"), SLOW_TASKS)
def test_learns_its_toy_task(variant, reverse):
    assert train_to_exact_match(variant, reverse) >= 0.95


def train_to_exact_match(variant: str, reverse: bool, updates: int = 2500) -> float:
    """Held-out exact match of a 64-unit model (the config's D) trained to 95% or `updates`."""
    overrides = ("model.hidden_size=64", "model.embedding_size=64", "model.dropout=0.1")
    model = build(variant, *overrides, vocab=EOS + 21, half_width=None)
    task = ToyTask(reverse=reverse, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy = 0.0
    for update in range(1, updates + 1):
        src, src_lengths, tgt_in, tgt_out = task.batch(task.sample(64))
        logits = model(src, src_lengths, tgt_in).logits
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if update % 250 == 0 and (accuracy := exact_match(model, task, task.held_out)) >= 0.95:
            break
    return accuracy


def test_train_config_takes_attention_and_wiring_from_the_command_line():
    """`python -m seq2seq.train model/attention=... [model.decoder.wiring=...]` composes so."""
    paper = support.compose_config("train", "model/attention=luong_general").model
    crossed = support.compose_config(
        "train", "model/attention=luong_general", "model.decoder.wiring=bahdanau"
    ).model
    assert paper.attention == crossed.attention
    assert paper.attention._target_ == "seq2seq.models.rnn.attention.LuongGeneralAttention"
    assert (paper.decoder.wiring, crossed.decoder.wiring) == ("luong", "bahdanau")
