"""The training loop on a real (tiny) run: seeding, resume after a kill, NaN, early stopping."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from seq2seq import checkpoint as ckpt
from seq2seq.train import train
from seq2seq.training import trainer as trainer_module
from seq2seq.training.trainer import Trainer


class Killed(Exception):
    """Stands in for SIGKILL: the run stops between two updates without saving anything."""


def kill_at_update(monkeypatch: pytest.MonkeyPatch, update: int) -> None:
    original = Trainer._update

    def update_or_die(self: Trainer, group):
        if self.progress.update + 1 == update:
            raise Killed
        return original(self, group)

    monkeypatch.setattr(Trainer, "_update", update_or_die)


def losses_of(run_dir: Path) -> list[float]:
    return ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["losses"]


def test_same_seed_gives_same_curve_and_resume_continues_it(tiny_config, tmp_path, monkeypatch):
    # 300 pairs in batches of <= 400 tokens: 16 updates an epoch, so the run crosses an epoch
    # boundary and the kill at 22 (last checkpoint at 20) lands mid-epoch
    overrides = ("trainer.max_updates=30", "trainer.checkpoint_every=5")
    train(tiny_config(*overrides), tmp_path / "a")
    train(tiny_config(*overrides), tmp_path / "b")
    reference = losses_of(tmp_path / "a")
    assert len(reference) == 30
    assert losses_of(tmp_path / "b") == reference

    kill_at_update(monkeypatch, 22)
    with pytest.raises(Killed):
        train(tiny_config(*overrides), tmp_path / "killed")
    saved = ckpt.load_checkpoint(tmp_path / "killed")["progress"]
    assert saved["update"] == 20 and saved["epoch"] == 1 and 0 < saved["batch_in_epoch"]
    monkeypatch.undo()

    resume = f"trainer.resume={tmp_path / 'killed'}"
    train(tiny_config(*overrides, resume), tmp_path / "resumed")
    assert losses_of(tmp_path / "resumed") == reference


def test_seed_changes_the_curve(tiny_config, tmp_path):
    train(tiny_config("trainer.max_updates=5", "seed=1"), tmp_path / "one")
    train(tiny_config("trainer.max_updates=5", "seed=2"), tmp_path / "two")
    assert losses_of(tmp_path / "one") != losses_of(tmp_path / "two")


def test_a_nan_loss_skips_its_update_and_training_goes_on(tiny_config, tmp_path, monkeypatch):
    calls = {"n": 0}

    def poisoned_cross_entropy(*args, **kwargs):
        calls["n"] += 1
        loss = F.cross_entropy(*args, **kwargs)
        return loss * math.nan if calls["n"] == 7 else loss

    monkeypatch.setattr(trainer_module, "F", SimpleNamespace(cross_entropy=poisoned_cross_entropy))
    train(tiny_config("trainer.max_updates=10", "trainer.checkpoint_every=3"), tmp_path / "run")
    kept = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert kept["progress"]["update"] == 10 and kept["progress"]["skipped_updates"] == 1
    assert all(math.isfinite(loss) for loss in kept["progress"]["losses"])
    assert all(torch.isfinite(t).all() for t in kept["model"].values() if t.is_floating_point())


def test_early_stopping_keeps_best_checkpoint(tiny_config, tmp_path):
    # loss cannot improve with lr 0, so the first validation is the best and patience runs out
    run = tmp_path / "run"
    train(
        tiny_config(
            "optim.lr=1e-12",
            "trainer.validate_every=2",
            "trainer.patience=2",
            "trainer.early_stopping_metric=loss",
            "trainer.max_updates=50",
        ),
        run,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["stop_reason"].startswith("early stopping")
    assert metrics["train"]["updates"] == 6
    assert ckpt.load_checkpoint(run / "checkpoints" / "best.pt")["progress"]["update"] == 2


def test_run_directory_has_everything_a_number_needs(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("trainer.max_updates=4", "search=beam", "search.beam_size=2"), run)
    for name in ("metrics.json", "test.src", "test.ref", "test.greedy.hyp", "test.beam2.hyp"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard" / "Transformer_seed42").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"greedy", "beam2"}
    assert metrics["test"]["greedy"]["bleu_signature"].startswith("nrefs:1")
    assert metrics["config"]["model"]["d_model"] == 32
    hyps = (run / "test.greedy.hyp").read_text().splitlines()
    assert len(hyps) == len((run / "test.ref").read_text().splitlines()) == 30


def test_a_budget_ending_between_validations_validates_the_last_update(tiny_config, tmp_path):
    # 16 updates an epoch: the budget of 7 ends mid-epoch, 5 updates after the last validation
    train(tiny_config("trainer.max_updates=7", "trainer.validate_every=2"), tmp_path / "a")
    updates = [
        v["update"]
        for v in json.loads((tmp_path / "a" / "metrics.json").read_text())["validations"]
    ]
    assert updates == [2, 4, 6, 7]
    # a run that ends on a validation is not validated twice
    train(tiny_config("trainer.max_updates=6", "trainer.validate_every=2"), tmp_path / "b")
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [v["update"] for v in metrics["validations"]] == [2, 4, 6]


def test_throughput_counts_updates_only(tiny_config, tmp_path, monkeypatch):
    """metrics.json's tokens/s is measured over the updates alone: a validation that takes a
    second (as greedy decoding of a slow variant may) leaves it where it was."""
    original = trainer_module.Validator.run

    def slow_run(self, *args, **kwargs):
        time.sleep(1.0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Validator, "run", slow_run)
    train(tiny_config("trainer.max_updates=6", "trainer.validate_every=2"), tmp_path)
    measured = json.loads((tmp_path / "metrics.json").read_text())["train"]
    # validations at updates 2, 4, 6: at least 3 s of sleep in the wall-clock time only
    assert measured["seconds"] >= measured["update_seconds"] + 3.0
    assert measured["tgt_tokens_per_second"] == pytest.approx(
        measured["tgt_tokens"] / measured["update_seconds"]
    )


def test_progress_bar_stays_off_a_redirected_log(tiny_config, tmp_path, capfd):
    """With output going to a file (not a terminal), tqdm writes no carriage-return bar into it:
    the periodic log lines are the progress."""
    train(tiny_config("trainer.max_updates=5", "trainer.progress=true"), tmp_path)
    assert "\r" not in capfd.readouterr().err
