"""The trainer's arithmetic against references computed here, not by the trainer itself.

A tiny real RNN (the composed config, 8 units) trains on hand-made batches; validation is
scripted where the test is about what the trainer does with its scores (plateau, patience).
Each test names the wrong behaviour it catches.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import support
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from seq2seq import checkpoint as ckpt
from seq2seq.data.batch import Batch
from seq2seq.inference import ValidationResult, Validator
from seq2seq.models.interface import ModelOutput
from seq2seq.train import train
from seq2seq.training import trainer as trainer_module
from seq2seq.training.trainer import Trainer

VOCAB, PAD = 12, 0


def make_batch(generator: torch.Generator, src_lengths: list[int], tgt_lengths: list[int]) -> Batch:
    """Random sentences of these lengths, padded with PAD; tgt_lengths count EOS."""
    src = torch.full((len(src_lengths), max(src_lengths)), PAD)
    tgt = torch.full((len(tgt_lengths), max(tgt_lengths) + 1), PAD)
    for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths, strict=True)):
        src[i, :s] = torch.randint(3, VOCAB, (s,), generator=generator)
        tgt[i, : t + 1] = torch.randint(3, VOCAB, (t + 1,), generator=generator)
    return Batch(
        src=src,
        src_lengths=torch.tensor(src_lengths),
        tgt_in=tgt[:, :-1],
        tgt_out=torch.where(tgt[:, 1:] == PAD, PAD, tgt[:, 1:]),
        tgt_lengths=torch.tensor(tgt_lengths),
        indices=torch.arange(len(src_lengths)),
    )


# three micro-batches with different token counts and padding: a mean of per-batch means
# would weigh their tokens differently from one batch of all of them
MICRO = [([5, 3], [4, 2]), ([7, 2, 4], [6, 6, 1]), ([3], [5])]


def micro_batches() -> list[Batch]:
    generator = torch.Generator().manual_seed(0)
    return [make_batch(generator, s, t) for s, t in MICRO]


def combined(batches: list[Batch]) -> Batch:
    """One batch holding every sentence of `batches`, padded to the longest."""
    src_len = max(b.src.size(1) for b in batches)
    tgt_len = max(b.tgt_in.size(1) for b in batches)

    def cat(field: str, length: int) -> torch.Tensor:
        parts = [getattr(b, field) for b in batches]
        return torch.cat([F.pad(p, (0, length - p.size(1)), value=PAD) for p in parts])

    return Batch(
        src=cat("src", src_len),
        src_lengths=torch.cat([b.src_lengths for b in batches]),
        tgt_in=cat("tgt_in", tgt_len),
        tgt_out=cat("tgt_out", tgt_len),
        tgt_lengths=torch.cat([b.tgt_lengths for b in batches]),
        indices=torch.cat([b.indices for b in batches]),
    )


def tiny_model() -> nn.Module:
    cfg = support.compose_model(
        "model=rnn", "model.hidden_size=8", "model.embedding_size=8", "model.dropout=0.0"
    )
    torch.manual_seed(0)
    return instantiate(cfg, src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD)


class Recorder:
    """Stands in for the RunLogger: keeps the lr after each validation and each update."""

    def __init__(self, trainer_ref: Callable[[], Trainer]) -> None:
        self.trainer, self.validation_lrs, self.update_lrs = trainer_ref, [], []

    def train_update(self, update, stats, lr) -> None:
        self.update_lrs.append(lr)

    def validation(self, update, result, model=None) -> None:
        self.validation_lrs.append(self.trainer().optimizer.param_groups[0]["lr"])

    def flush(self) -> None:
        pass


class ScriptedValidator:
    """Returns the given scores in turn (the trainer only reads them)."""

    def __init__(self, **series: list[float]) -> None:
        self.series, self.calls = series, 0

    def run(self, model, split, progress=False) -> ValidationResult:
        i, self.calls = self.calls, self.calls + 1
        metrics = {"loss": 1.0, "ppl": math.e, "bleu": 1.0, "chrf": 1.0, "exact_match": 0.0}
        metrics.update(
            {name: values[min(i, len(values) - 1)] for name, values in self.series.items()}
        )
        return ValidationResult(metrics=metrics, hypotheses=[])


def make_trainer(
    tmp_path: Path,
    *,
    model: nn.Module | None = None,
    batches: list[Batch] | None = None,
    validator=None,
    scheduler_config: str = "scheduler=constant",
    lr: float = 1e-3,
    **options,
) -> Trainer:
    model = model or tiny_model()
    batches = batches if batches is not None else micro_batches()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler_cfg = support.compose_config("train", scheduler_config).scheduler
    for key, value in options.pop("scheduler_options", {}).items():
        scheduler_cfg[key] = value
    data = SimpleNamespace(batches=lambda split, epoch=0: batches)
    trainer: Trainer | None = None
    # fp32: these tests check the trainer's arithmetic to float tolerance on any CPU
    settings = {"validate_every": 1000, "patience": None, "label_smoothing": 0.0}
    settings |= {"precision": "fp32"} | options
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=instantiate(scheduler_cfg)(optimizer),
        data=data,
        run_dir=tmp_path,
        checkpoint_extras={"config": {}, "tokenizer": b""},
        validator=validator or ScriptedValidator(),
        device=torch.device("cpu"),
        num_threads=1,
        progress=False,
        logger=Recorder(lambda: trainer),
        **settings,
    )
    return trainer


def gradients_at_step(trainer: Trainer) -> list[list[torch.Tensor]]:
    """The gradients the optimizer is about to apply, at each of its steps."""
    seen: list[list[torch.Tensor]] = []
    params = list(trainer.model.parameters())
    trainer.optimizer.register_step_pre_hook(
        lambda *_: seen.append([p.grad.clone() for p in params])
    )
    return seen


# ---------------------------------------------------------------- accumulation, smoothing, clip


def test_accumulated_micro_batches_equal_one_combined_batch(tmp_path):
    """Catches: each micro-batch normalised by its own tokens, or gradients not summed."""
    model = tiny_model()
    reference = copy.deepcopy(model)
    trainer = make_trainer(
        tmp_path, model=model, accumulate_grad=3, label_smoothing=0.1, clip_grad_norm=None
    )
    grads = gradients_at_step(trainer)
    stats = trainer._update(micro_batches())

    batch = combined(micro_batches())
    logits = reference(batch.src, batch.src_lengths, batch.tgt_in).logits
    loss = F.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD, label_smoothing=0.1
    )  # mean over the real target tokens of all three micro-batches
    loss.backward()
    assert stats.tgt_tokens == sum(sum(t) for _, t in MICRO)
    assert stats.loss == pytest.approx(loss.item(), rel=1e-5)
    for got, param in zip(grads[0], reference.parameters(), strict=True):
        torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6)


class FixedLogits(nn.Module):
    """A model whose logits are given: the trainer's loss can be worked out on paper."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.pad_id = PAD
        self.logits = logits
        self.bias = nn.Parameter(torch.zeros(logits.size(-1)))

    def forward(self, src, src_lengths, tgt_in, return_attention=False, positions=None):
        logits = self.logits + self.bias
        return ModelOutput(logits=logits if positions is None else logits[positions])


def test_label_smoothed_loss_equals_the_formula_on_a_hand_example(tmp_path):
    """loss = (1 - ε)·(-log p_y) + ε·mean_k(-log p_k) per real token, averaged over the real
    tokens; the padded position (a huge loss if counted) is left out.
    Catches: smoothing ignored, padding counted, a sum not divided by the token count."""
    epsilon = 0.2
    # one sentence of two target tokens (ids 1 and 2) and a padded third position, V = 3
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [9.0, -9.0, -9.0]]])
    batch = Batch(
        src=torch.tensor([[1]]),
        src_lengths=torch.tensor([1]),
        tgt_in=torch.tensor([[1, 1, PAD]]),
        tgt_out=torch.tensor([[1, 2, PAD]]),
        tgt_lengths=torch.tensor([2]),
        indices=torch.tensor([0]),
    )
    trainer = make_trainer(
        tmp_path, model=FixedLogits(logits), batches=[batch], label_smoothing=epsilon
    )
    stats = trainer._update([batch])

    def smoothed(row: list[float], target: int) -> float:
        log_z = math.log(sum(math.exp(x) for x in row))
        nll = [log_z - x for x in row]  # -log p_k
        return (1 - epsilon) * nll[target] + epsilon * sum(nll) / len(row)

    expected = (smoothed([2.0, 0.0, -1.0], 1) + smoothed([0.5, 0.5, 3.0], 2)) / 2
    assert stats.tgt_tokens == 2
    assert stats.loss == pytest.approx(expected, rel=1e-6)


def test_clipping_bounds_the_applied_gradient_norm_and_keeps_its_direction(tmp_path):
    """Catches: clipping skipped, or a bound other than trainer.clip_grad_norm."""
    unclipped_trainer = make_trainer(tmp_path / "a", clip_grad_norm=None)
    unclipped = gradients_at_step(unclipped_trainer)
    stats = unclipped_trainer._update(micro_batches()[:1])
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in unclipped[0]])).item()
    assert stats.grad_norm == pytest.approx(norm, rel=1e-5)  # the logged norm is the raw one
    bound = norm / 4

    clipped_trainer = make_trainer(tmp_path / "b", clip_grad_norm=bound)
    clipped = gradients_at_step(clipped_trainer)
    clipped_trainer._update(micro_batches()[:1])
    applied = torch.linalg.vector_norm(torch.stack([g.norm() for g in clipped[0]])).item()
    assert applied == pytest.approx(bound, rel=1e-4)
    for got, raw in zip(clipped[0], unclipped[0], strict=True):
        torch.testing.assert_close(got, raw * (bound / norm), rtol=1e-4, atol=1e-8)


# ---------------------------------------------------------------- plateau and stop conditions


@pytest.mark.parametrize(
    ("metric", "mode", "series"),
    [
        # the configured metric stops improving after the 2nd validation; the other one
        # improves every time, so a scheduler fed the wrong metric would never reduce
        ("loss", "min", {"loss": [5.0, 4.0, 4.5, 4.6, 4.7, 4.8], "bleu": [1, 2, 3, 4, 5, 6]}),
        ("bleu", "max", {"bleu": [1.0, 2.0, 1.5, 1.4, 1.3, 1.2], "loss": [6, 5, 4, 3, 2, 1]}),
    ],
)
def test_plateau_halves_the_lr_when_the_configured_metric_stalls(tmp_path, metric, mode, series):
    """configs/scheduler/plateau.yaml: patience 2, factor 0.5 — the lr halves at the third
    validation in a row without improvement (the 5th here), not before.
    Catches: stepping on another metric, or in the wrong mode."""
    trainer = make_trainer(
        tmp_path,
        scheduler_config="scheduler=plateau",
        scheduler_options={"mode": mode},
        validator=ScriptedValidator(**series),
        early_stopping_metric=metric,
        validate_every=1,
        max_updates=6,
    )
    trainer.fit()
    lr = 1e-3
    assert trainer.logger.validation_lrs == pytest.approx([lr, lr, lr, lr, lr / 2, lr / 2])
    assert trainer.logger.update_lrs == pytest.approx([lr] * 5 + [lr / 2])


def test_max_updates_stops_at_that_update(tmp_path):
    """Catches: an off-by-one in the budget (stopping at 4 or 6)."""
    progress = make_trainer(tmp_path, max_updates=5, max_epochs=100).fit()  # 3 updates an epoch
    assert progress.update == 5 and progress.stop_reason == "reached trainer.max_updates=5"


def test_max_epochs_stops_after_that_many_epochs(tmp_path):
    """3 micro-batches an epoch, 1 per update: 2 epochs are 6 updates, each epoch validated.
    Catches: an extra or a missing epoch."""
    validator = ScriptedValidator()
    progress = make_trainer(tmp_path, validator=validator, max_epochs=2).fit()
    assert (progress.update, progress.epoch) == (6, 2)
    assert progress.stop_reason == "reached trainer.max_epochs=2"
    assert [v["update"] for v in progress.validations] == [3, 6]


def test_max_minutes_stops_at_the_first_update_past_the_budget(tmp_path, monkeypatch):
    """A fake clock advances 6 s at each reading, so an update or a validation takes 6 s:
    updates 1-3 take 18 s, the end of epoch 1 validates (6 s), update 4 reaches 30 s = 0.5 min.
    Catches: minutes read as seconds or hours, validation time left out of the budget (stops
    at 5), time not accumulated across updates."""
    clock = iter(range(0, 60_000, 6))
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: float(next(clock)))
    progress = make_trainer(tmp_path, max_minutes=0.5, max_epochs=100).fit()
    assert progress.update == 4
    assert progress.stop_reason == "reached trainer.max_minutes=0.5"


def test_patience_stops_after_that_many_validations_without_improvement(tmp_path):
    """Best BLEU at update 2, then 3 worse ones: patience 3 stops at update 5, not 4 or 6.
    Catches: an off-by-one in counting bad validations, or a reset on a worse score."""
    validator = ScriptedValidator(bleu=[1.0, 3.0, 2.0, 2.5, 2.9, 10.0])
    progress = make_trainer(
        tmp_path, validator=validator, validate_every=1, patience=3, max_epochs=100
    ).fit()
    assert progress.update == 5 and progress.best_update == 2
    assert progress.stop_reason.startswith("early stopping")


# ---------------------------------------------------------------- best.pt is what is tested


def test_the_test_split_is_scored_with_best_pt_not_the_last_weights(
    tiny_config, tmp_path, monkeypatch
):
    """Validation BLEU is scripted to peak at the first of two validations, so best.pt holds
    update 2 and last.pt update 4. Catches: testing the final weights instead of best.pt."""
    real_run = Validator.run
    scripted = ScriptedValidator(bleu=[50.0, 10.0])
    tested: list[dict[str, torch.Tensor]] = []

    def run(self, model, split, progress=False):
        if split == "validation":
            return scripted.run(model, split)
        tested.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_run(self, model, split, progress)

    monkeypatch.setattr(Validator, "run", run)
    run_dir = tmp_path / "run"
    train(tiny_config("trainer.max_updates=4", "trainer.validate_every=2"), run_dir)
    best = ckpt.load_checkpoint(run_dir / "checkpoints" / "best.pt")
    last = ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (best["progress"]["update"], last["progress"]["update"]) == (2, 4)
    assert tested, "the test split was never scored"
    for name, weights in tested[0].items():
        assert torch.equal(weights, best["model"][name]), name
    assert any(not torch.equal(w, last["model"][n]) for n, w in tested[0].items())
    assert json.loads((run_dir / "metrics.json").read_text())["train"]["best_update"] == 2


# ---------------------------------------------------------------- non-finite losses and gradients


def finite(weights) -> bool:
    return all(torch.isfinite(t).all() for t in weights if t.is_floating_point())


def run_poisoned(trainer: Trainer, monkeypatch) -> list[bool]:
    """Fit, tolerating the trainer's divergence error; return, for every checkpoint written,
    whether its weights were finite. The in-memory weights must be finite at the end too: a
    check made after the update was applied would leave them poisoned."""
    written: list[bool] = []
    real_save = ckpt.save_checkpoint

    def save(payload, path):
        written.append(finite(payload["model"].values()))
        real_save(payload, path)

    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    try:
        trainer.fit()
    except FloatingPointError:
        pass
    assert finite(trainer.model.state_dict().values()), "a non-finite update was applied"
    return written


def poison_loss(monkeypatch, call: int, factor: float) -> None:
    """Multiply the `call`-th micro-batch loss by `factor` (inf or nan)."""
    calls = {"n": 0}

    def cross_entropy(*args, **kwargs):
        calls["n"] += 1
        loss = F.cross_entropy(*args, **kwargs)
        return loss * factor if calls["n"] == call else loss

    monkeypatch.setattr(trainer_module, "F", SimpleNamespace(cross_entropy=cross_entropy))


def test_an_infinite_loss_is_never_applied_or_checkpointed(tmp_path, monkeypatch):
    """Catches: the finiteness check moved after the optimizer step (weights become NaN)."""
    poison_loss(monkeypatch, call=3, factor=math.inf)
    trainer = make_trainer(tmp_path, checkpoint_every=1, max_updates=5)
    written = run_poisoned(trainer, monkeypatch)
    assert written and all(written)


def test_a_nan_inside_gradient_accumulation_is_never_applied_or_checkpointed(tmp_path, monkeypatch):
    """The 2nd micro-batch of the 2nd update (call 5 of 3 per update) is NaN; the other two of
    its micro-batches are finite. Catches: a check on the last micro-batch's loss only."""
    poison_loss(monkeypatch, call=5, factor=math.nan)
    trainer = make_trainer(tmp_path, accumulate_grad=3, checkpoint_every=1, max_updates=4)
    written = run_poisoned(trainer, monkeypatch)
    assert written and all(written)


def test_a_nan_gradient_under_a_finite_loss_is_never_applied_or_checkpointed(tmp_path, monkeypatch):
    """The loss is finite but the backward yields NaN (as an fp16 overflow inside the graph
    can): only the gradient norm shows it. Catches: a check of the loss alone, which applies
    the update and checkpoints the NaN weights before the next loss is found non-finite."""
    trainer = make_trainer(tmp_path, checkpoint_every=1, max_updates=5, clip_grad_norm=1.0)
    first = next(trainer.model.parameters())
    first.register_hook(lambda g: g * math.nan if trainer.progress.update == 2 else g)
    written = run_poisoned(trainer, monkeypatch)
    assert written and all(written)
