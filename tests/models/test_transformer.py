"""Properties of the Transformer baseline, built from the real configs/model/transformer.yaml.

Every model here is the composed Hydra config shrunk to d_model 32 and 2 + 2 layers, so the
config users run is the one tested.
"""

from __future__ import annotations

import json

import pytest
import support
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.config import validate_config
from seq2seq.decoding import SearchSettings, search
from seq2seq.models.transformer import Transformer, TransformerState, attend
from seq2seq.train import train

PAD, BOS, EOS = 0, 2, 3
SRC_VOCAB, TGT_VOCAB = 11, 13  # unequal, so swapping the two vocabularies would show
TINY = (
    "model.d_model=32",
    "model.num_heads=4",
    "model.ff_size=64",
    "model.num_encoder_layers=2",
    "model.num_decoder_layers=2",
)
VARIANTS = {
    "pre_norm": (),
    "post_norm": ("model.pre_norm=false",),
    "learned_positions": ("model.learned_positions=true",),
    "shared_untied": ("model.share_embeddings=true", "model.tie_output=false"),
}


def compose_model(name: str = "transformer", overrides: tuple[str, ...] = ()) -> DictConfig:
    return support.compose_model(f"model={name}", *overrides)


def build(overrides: tuple[str, ...] = (), *, seed: int = 0) -> Transformer:
    """A tiny model from the real config; equal vocabularies when embeddings are shared."""
    cfg = compose_model("transformer", (*TINY, *overrides))
    torch.manual_seed(seed)
    src_vocab = TGT_VOCAB if cfg.share_embeddings else SRC_VOCAB
    return instantiate(cfg, src_vocab_size=src_vocab, tgt_vocab_size=TGT_VOCAB, pad_id=PAD)


def padded(lengths: list[int], vocab: int, generator: torch.Generator, bos: bool = False):
    """Random ids >= 4 (no specials) padded with PAD; a leading BOS when `bos`."""
    ids = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    ids[torch.arange(ids.size(1)) >= torch.tensor(lengths).unsqueeze(1)] = PAD
    if bos:
        ids[:, 0] = BOS
    return ids, torch.tensor(lengths)


def batch(src_lengths: list[int], tgt_lengths: list[int], seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    src, src_len = padded(src_lengths, SRC_VOCAB, generator)
    tgt_in, _ = padded(tgt_lengths, TGT_VOCAB, generator, bos=True)
    return src, src_len, tgt_in


def reverse_task(n: int, generator: torch.Generator, symbols: int = 10):
    """Sources of 3..10 random symbols; targets are the reversed source then EOS."""
    lengths = torch.randint(3, 11, (n,), generator=generator)
    src, _ = padded(lengths.tolist(), 4 + symbols, generator)
    tgt_out = torch.full((n, src.size(1) + 1), PAD)
    for i, n_i in enumerate(lengths.tolist()):
        tgt_out[i, : n_i + 1] = torch.cat([src[i, :n_i].flip(0), torch.tensor([EOS])])
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt_out[:, :-1]], 1).masked_fill(
        tgt_out == PAD, PAD
    )
    return src, lengths, tgt_in, tgt_out


def run_steps(
    model: Transformer, state: TransformerState, tokens: torch.Tensor, attention: bool = False
):
    """Feed tokens (B, T) one step at a time -> (log-probs (B, T, V), attention (B, T, S) if
    asked for, final state)."""
    log_probs, weights = [], []
    for t in range(tokens.size(1)):
        out = model.step(tokens[:, t], state, return_attention=attention)
        state = out.state
        log_probs.append(out.log_probs)
        weights.append(out.attention)
    weights = None if weights[0] is None else torch.stack(weights, 1)
    return torch.stack(log_probs, 1), weights, state


def test_configs_compose_small_default_and_base_inherits_it():
    small, base = compose_model("transformer"), compose_model("transformer_base")
    sizes = ("d_model", "num_heads", "ff_size", "num_encoder_layers", "num_decoder_layers")
    assert [small[k] for k in sizes] == [256, 4, 1024, 3, 3]
    assert [base[k] for k in sizes] == [512, 8, 2048, 6, 6]
    assert {k: v for k, v in base.items() if k not in sizes} == {
        k: v for k, v in small.items() if k not in sizes
    }
    model = instantiate(small, src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, pad_id=PAD)
    assert (len(model.encoder.layers), len(model.decoder.layers)) == (3, 3)
    assert model.output_layer.weight is model.tgt_embed.token.weight  # tie_output: true


def recipe(*overrides: str) -> tuple[str, float, list[float], str]:
    """(optimizer, lr, betas, schedule) of the train config with these overrides."""
    return support.training_recipe(support.compose_config("train", *overrides))


def test_the_transformer_brings_its_training_recipe_and_the_command_line_overrides_it():
    transformer = ("Adam", 5e-4, [0.9, 0.98], "inverse_sqrt_warmup/400")
    assert recipe("model=transformer") == transformer
    assert recipe("model=transformer_base") == transformer
    assert recipe("experiment=compare_attention", "variant=transformer") == transformer
    assert recipe("model=rnn") == ("Adam", 1e-3, [0.9, 0.999], "ConstantLR")
    assert recipe("model=transformer", "scheduler=constant", "optim.lr=1e-3")[1:4:2] == (
        1e-3,
        "ConstantLR",
    )
    assert recipe("model=transformer", "optim=adamw")[0] == "AdamW"
    # short comparisons give every variant one constant lr: a warm-up would outlast them
    for experiment in ("compare_attention_smoke", "compare_attention_quick"):
        assert recipe(f"experiment={experiment}", "variant=transformer")[3] == "ConstantLR"


def toy_settings(*overrides: str) -> tuple[str, float, float, int | None, float]:
    """(schedule, dropout, label smoothing, max updates, lr) of the train config."""
    cfg = support.compose_config("train", *overrides)
    schedule = support.training_recipe(cfg)[3]
    trainer = cfg.trainer
    return schedule, cfg.model.dropout, trainer.label_smoothing, trainer.max_updates, cfg.optim.lr


def test_the_toy_reverse_experiment_is_a_short_annealed_unregularised_run():
    toy = "experiment=toy_reverse_transformer"
    assert toy_settings(toy) == ("one_cycle/60", 0.0, 0.0, 800, 1e-3)
    cfg = support.compose_config("train", toy)
    assert (cfg.data.name, cfg.model._target_.rsplit(".", 1)[-1]) == ("toy_reverse", "Transformer")
    assert cfg.scheduler.total_updates == cfg.trainer.max_updates  # anneals over the budget
    # values on the command line still win
    assert toy_settings(toy, "trainer.max_updates=900", "model.dropout=0.1")[1:4] == (0.1, 0.0, 900)
    assert (
        support.compose_config("train", toy, "trainer.max_updates=900").scheduler["total_updates"]
        == 900
    )
    # the data and model alone bring no data-specific settings: the Transformer's own recipe
    default = ("inverse_sqrt_warmup/400", 0.1, 0.1, None, 5e-4)
    assert toy_settings("model=transformer", "data=toy_reverse") == default
    assert toy_settings("model=transformer") == default
    smoke = ("experiment=compare_attention_smoke", "variant=transformer", "data=toy_reverse")
    assert toy_settings(*smoke)[:3] == ("ConstantLR", 0.1, 0.1)


@pytest.mark.parametrize("model", ["rnn", "transformer"])
@pytest.mark.parametrize("scheduler", ["constant", "noam", "one_cycle", "plateau", "transformer"])
def test_a_scheduler_choice_is_that_schedule_alone(model, scheduler):
    """No config sets a schedule's settings outside configs/scheduler/, so a scheduler= choice
    never meets another schedule's keys, with either family and a data set's own settings."""
    overrides = (f"model={model}", "data=toy_reverse", f"scheduler={scheduler}")
    cfg = support.compose_config("train", *overrides, "trainer.max_updates=1000")
    validate_config(cfg)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr)
    instantiate(cfg.scheduler)(optimizer)  # a foreign key would be a TypeError here


def test_an_experiment_setting_meeting_another_scheduler_is_named_up_front():
    """experiment=toy_reverse_transformer sets one_cycle's warm-up; with scheduler=constant from
    the command line that key has no taker: a one-line error naming it, not a TypeError later."""
    cfg = support.compose_config(
        "train", "experiment=toy_reverse_transformer", "scheduler=constant"
    )
    with pytest.raises(
        ValueError, match=r"scheduler\.warmup_updates is not a setting of .*ConstantLR"
    ):
        validate_config(cfg)


@pytest.mark.parametrize("variant", VARIANTS)
def test_future_target_tokens_do_not_change_earlier_outputs(variant):
    model = build(VARIANTS[variant]).eval()
    src, src_len, tgt_in = batch([6, 4, 5], [7, 7, 7])
    changed = tgt_in.clone()
    changed[:, 4] = (changed[:, 4] - 3) % (TGT_VOCAB - 4) + 4  # another non-special token
    with torch.no_grad():
        before = model(src, src_len, tgt_in).logits
        after = model(src, src_len, changed).logits
    torch.testing.assert_close(after[:, :4], before[:, :4], rtol=0, atol=1e-6)
    assert (after[:, 4:] - before[:, 4:]).abs().amax() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_equals_each_sentence_alone(variant):
    model = build(VARIANTS[variant]).eval()
    src_lengths, tgt_lengths = [6, 2, 4], [3, 6, 5]
    src, src_len, tgt_in = batch(src_lengths, tgt_lengths)
    src[src == PAD] = 7  # what sits under the padding must not matter either
    with torch.no_grad():
        together = model(src, src_len, tgt_in, return_attention=True)
        for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
            alone = model(src[i : i + 1, :s], src_len[i : i + 1], tgt_in[i : i + 1, :t], True)
            torch.testing.assert_close(together.logits[i, :t], alone.logits[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                together.attention[i, :t, :s], alone.attention[0], atol=1e-6, rtol=0
            )


@pytest.mark.parametrize("variant", VARIANTS)
def test_incremental_decoding_matches_forward(variant):
    model = build(VARIANTS[variant]).eval()
    src, src_len, tgt_in = batch([6, 3, 5], [7, 7, 7])
    with torch.no_grad():
        full = model(src, src_len, tgt_in, return_attention=True)
        log_probs, attention, state = run_steps(
            model, model.init_state(model.encode(src, src_len)), tgt_in, attention=True
        )
    torch.testing.assert_close(log_probs, full.logits.log_softmax(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(attention, full.attention, atol=1e-5, rtol=0)
    assert state.position == 7 and all(kv.size(3) == 7 for kv in state.self_kv)


def test_reordered_cache_matches_recomputation():
    model = build().eval()
    src, src_len, tgt_in = batch([6, 3, 5], [8, 8, 8])
    order = torch.tensor([2, 0, 0, 1, 2])  # beams that survive, duplicated and permuted
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_len))
        _, _, state = run_steps(model, state, tgt_in[:, :4])
        resumed, _, _ = run_steps(model, state.reorder(order), tgt_in[order, 4:])
        fresh = model(src[order], src_len[order], tgt_in[order]).logits.log_softmax(-1)
    torch.testing.assert_close(resumed, fresh[:, 4:], atol=1e-5, rtol=0)


def test_source_keys_and_values_are_projected_once_per_sentence():
    model = build().eval()
    calls = []
    for layer in model.decoder.layers:
        layer.cross_attn.kv_proj.register_forward_hook(lambda *_: calls.append(1))
    src, src_len, tgt_in = batch([4, 2], [5, 5])
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_len))
        assert len(calls) == len(model.decoder.layers)
        run_steps(model, state, tgt_in)
    assert len(calls) == len(model.decoder.layers)


def test_step_attention_is_asked_for_per_call():
    model = build().eval()
    src, src_len, tgt_in = batch([4, 2], [3, 3])
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_len))
        assert model.step(tgt_in[:, 0], state).attention is None
        assert model(src, src_len, tgt_in).attention is None
        assert model.step(tgt_in[:, 0], state, return_attention=True).attention.shape == (2, 4)


def test_a_search_asking_for_attention_gets_it_from_the_transformer():
    """The search passes `return_attention` to every step: no flag on the model is needed, and
    each hypothesis' attention rows equal the teacher-forced pass over its own tokens."""
    model = build().eval()
    src, src_len, _ = batch([5, 3], [4, 4])
    settings = SearchSettings(beam_size=2, alpha=1.0, max_len_a=1.0, max_len_b=2)
    hypotheses = search(
        model, src, src_len, settings, bos_id=BOS, eos_id=EOS, return_attention=True
    )
    for i, (best, *_) in enumerate(hypotheses):
        n = int(src_len[i])
        tgt_in = torch.tensor([[BOS, *best.tokens]])
        with torch.no_grad():
            forced = model(src[i : i + 1, :n], src_len[i : i + 1], tgt_in, return_attention=True)
        assert best.attention.shape == (len(best.tokens) + 1, n)
        torch.testing.assert_close(best.attention, forced.attention[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", [0, -1])
def test_attention_weights_are_distributions_over_real_source_tokens(layer):
    model = build((f"model.attention_layer={layer}",)).eval()
    src, src_len, tgt_in = batch([6, 2, 4], [5, 5, 5])
    with torch.no_grad():
        mean = model(src, src_len, tgt_in, return_attention=True).attention  # (B, T, S)
        heads = model.cross_attention_heads(src, src_len, tgt_in)  # (B, h, T, S)
        other = model.cross_attention_heads(src, src_len, tgt_in, layer=1 - abs(layer))
    assert heads.shape == (3, 4, 5, 6)
    torch.testing.assert_close(heads.mean(dim=1), mean)
    assert not torch.allclose(heads, other)  # the configured layer is the one reported
    padding = torch.arange(6) >= src_len[:, None]  # (B, S)
    for weights in (mean, heads.flatten(1, 2)):
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
        assert (weights.masked_select(padding[:, None, :]) == 0).all()


ALL_DROPOUTS = ("model.attention_dropout=0.1", "model.activation_dropout=0.1")


@pytest.mark.parametrize("variant", [*VARIANTS, "all_dropouts"])
def test_gradients_reach_every_parameter(variant):
    model = build(VARIANTS.get(variant, ALL_DROPOUTS)).train()
    src, src_len, tgt_in = batch([6, 3], [8, 8])
    model(src, src_len, tgt_in).logits.logsumexp(-1).sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not silent


@pytest.mark.parametrize("variant", VARIANTS)
def test_overfits_a_tiny_batch(variant):
    torch.manual_seed(0)
    model = build((*VARIANTS[variant], "model.dropout=0.0"))
    src, src_len, tgt_in, tgt_out = reverse_task(4, torch.Generator().manual_seed(3), symbols=7)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(120):
        logits = model(src, src_len, tgt_in).logits
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    model.eval()
    with torch.no_grad():
        predicted = model(src, src_len, tgt_in).logits.argmax(-1)
    assert (predicted == tgt_out)[tgt_out != PAD].all()


def test_bf16_autocast_forward_and_step_agree_in_dtype():
    model = build().eval()
    src, src_len, tgt_in = batch([5, 3], [4, 4])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(src, src_len, tgt_in, return_attention=True)
        log_probs, attention, _ = run_steps(
            model, model.init_state(model.encode(src, src_len)), tgt_in, attention=True
        )
    assert full.logits.isfinite().all() and log_probs.isfinite().all()
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs, full.logits.float().log_softmax(-1), atol=0.1, rtol=0)


@pytest.mark.parametrize("masked", [False, True])
def test_bf16_attention_on_a_cpu_runs_the_math_kernel_and_equals_the_fused_one(masked):
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 4, 9, 16, generator=generator) for _ in range(3))
    mask = (torch.rand(6, 1, 1, 9, generator=generator) > 0.2) if masked else None
    options = {"attn_mask": mask} if masked else {"is_causal": True}

    def forward_backward(attention, dtype):
        inputs = [x.to(dtype).requires_grad_() for x in (q, k, v)]
        out = attention(*inputs, **options)
        out.float().square().sum().backward()
        return [out.float(), *(x.grad.float() for x in inputs)]

    with torch.profiler.profile() as prof:
        ours = forward_backward(attend, torch.bfloat16)
    kernels = {event.name for event in prof.events()}
    assert "aten::_scaled_dot_product_attention_math" in kernels
    assert not any("flash" in name for name in kernels)
    fused = forward_backward(F.scaled_dot_product_attention, torch.bfloat16)  # flash on a CPU
    exact = forward_backward(F.scaled_dot_product_attention, torch.float32)
    for mine, theirs, truth in zip(ours, fused, exact):  # output, then the three gradients
        # as close to fp32 as the fused bf16 kernel is, within bf16's rounding
        assert (mine - truth).abs().max() <= (theirs - truth).abs().max() + 0.02 * truth.abs().max()
    with torch.profiler.profile() as prof:
        forward_backward(attend, torch.float32)  # fp32 keeps PyTorch's choice
    assert not any("math" in event.name for event in prof.events())


# Hydra wraps constructor errors in InstantiationException, so these call the class directly.
TINY_KWARGS = dict(d_model=32, num_heads=4, ff_size=64, num_encoder_layers=2, num_decoder_layers=2)


def test_shared_embeddings_with_unequal_vocabularies_raise():
    with pytest.raises(
        ValueError, match="share_embeddings.*src_vocab_size=11 != tgt_vocab_size=13"
    ):
        Transformer(11, 13, PAD, **TINY_KWARGS, share_embeddings=True)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"num_heads": 5}, "d_model .32. must be divisible by model.num_heads .5."),
        ({"attention_layer": 2}, r"attention_layer must lie in \[-2, 1\]"),
    ],
)
def test_bad_hyper_parameters_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        Transformer(SRC_VOCAB, TGT_VOCAB, PAD, **{**TINY_KWARGS, **bad})


def test_sequences_beyond_max_positions_raise():
    model = build(("model.max_positions=6",)).eval()
    src, src_len, tgt_in = batch([7, 3], [4, 4])
    with pytest.raises(ValueError, match="max_positions=6"):
        model(src, src_len, tgt_in)


@pytest.fixture(scope="module")
def reverser() -> Transformer:
    """A small Transformer trained on the reverse task: about a minute on one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the function-scoped `one_thread` runs after module fixtures
    torch.manual_seed(0)
    model = Transformer(
        14,
        14,
        PAD,
        d_model=64,
        num_heads=4,
        ff_size=256,
        num_encoder_layers=2,
        num_decoder_layers=2,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    train_rng = torch.Generator().manual_seed(1)
    for _ in range(1200):
        src, src_len, tgt_in, tgt_out = reverse_task(64, train_rng)
        logits = model(src, src_len, tgt_in).logits
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("beam_size", [1, 5])
def test_learns_to_reverse_held_out_sequences(reverser, beam_size):
    """>= 95% exact match on unseen sentences, decoded by the project's greedy and beam search
    through the step interface."""
    src, src_len, _, tgt_out = reverse_task(200, torch.Generator().manual_seed(99))
    hypotheses = search(
        reverser,
        src,
        src_len,
        SearchSettings(beam_size, alpha=1.0, max_len_a=1.5, max_len_b=5),
        bos_id=BOS,
        eos_id=EOS,
    )
    expected = [row[:n].tolist() for row, n in zip(tgt_out, src_len.tolist())]
    exact = sum(h[0].tokens == e for h, e in zip(hypotheses, expected)) / len(expected)
    assert exact >= 0.95


@pytest.mark.slow
def test_the_toy_reverse_command_learns_the_task(tmp_path):
    """`python -m seq2seq.train experiment=toy_reverse_transformer` as users run it: >= 95% exact
    match on the 500 held-out test sentences (none is a training sentence),
    greedy and beam. ~5 minutes on 2 cores."""
    cfg = support.compose_config(
        "train",
        "experiment=toy_reverse_transformer",
        f"cache_dir={tmp_path / 'cache'}",
        "trainer.progress=false",
    )
    train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["updates"] == cfg.trainer.max_updates
    assert {name: result["exact_match"] >= 95 for name, result in metrics["test"].items()} == {
        "greedy": True,
        "beam5": True,
    }
