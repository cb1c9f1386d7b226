"""Runs that go wrong, as found in issue 15: divergence, changed settings at resume, one run in
one directory, two processes on one directory, interrupts."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from seq2seq import checkpoint as ckpt
from seq2seq.interrupts import Interrupted
from seq2seq.train import train
from seq2seq.training.resume import ResumeConfigError
from seq2seq.training.run_dir import RunDirError, RunLock
from seq2seq.training.trainer import DivergenceError, Trainer

from .conftest import REPO, TINY, compose_config

CURVE = ("trainer.max_updates=30", "trainer.checkpoint_every=5", "scheduler=constant")


def tiny_rnn(tmp_path: Path, *overrides: str):
    """TINY with a small GRU instead of the Transformer: at lr 1e9 its loss grows huge but
    finite, as the default RNN's did when the issue was found."""
    rnn = [o for o in TINY if not o.startswith("model")]
    model = ("model=rnn", "model.hidden_size=16", "model.embedding_size=16")
    return compose_config("train", *rnn, *model, f"cache_dir={tmp_path / 'cache'}", *overrides)


def progress_of(run: Path) -> dict:
    return ckpt.load_checkpoint(run / "checkpoints" / "last.pt")["progress"]


def finite(run: Path, name: str = "last.pt") -> bool:
    weights = ckpt.load_checkpoint(run / "checkpoints" / name)["model"].values()
    return all(torch.isfinite(t).all() for t in weights if t.is_floating_point())


def stop_before_update(monkeypatch: pytest.MonkeyPatch, update: int, stop) -> None:
    """Call `stop(trainer)` when `update` is about to start."""
    original = Trainer._update

    def update_or_stop(self: Trainer, group):
        if self.progress.update + 1 == update:
            stop(self)
        return original(self, group)

    monkeypatch.setattr(Trainer, "_update", update_or_stop)


class Killed(Exception):
    """Stands in for SIGKILL: the run ends between two updates without saving anything."""


def kill(trainer: Trainer) -> None:
    trainer.logger.flush()  # as TensorBoard's writer does every 2 minutes: events past last.pt
    raise Killed


def tensorboard_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    """`tag`'s (step, value) points as TensorBoard shows them: event files in order, and a
    writer's purge_step (a START session log) drops the points at and after its step."""
    points: list[tuple[int, float]] = []
    for file in sorted((run / "tensorboard").rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                points = [p for p in points if p[0] < event.step]
            for value in event.summary.value:
                if value.tag == tag:  # the loader gives scalars in tensor form
                    points.append((event.step, value.tensor.float_val[0]))
    return points


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of 30 updates: 16 an epoch, so 22 lies in the second epoch."""
    tmp = tmp_path_factory.mktemp("reference")
    train(compose_config("train", *TINY, f"cache_dir={tmp / 'cache'}", *CURVE), tmp / "run")
    return tmp / "run"


# ---------------------------------------------------------------- 1. divergence


def test_lr_1e33_without_clipping_stops_and_writes_no_exploded_checkpoint(tiny_config, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config("optim.lr=1e33", "trainer.clip_grad_norm=null", "trainer.checkpoint_every=1")
    with pytest.raises(DivergenceError, match="non-finite") as failure:
        train(cfg, run)
    # the first update blew the weights up; its checkpoint waited for the next loss, and no more
    assert not (run / "checkpoints" / "last.pt").exists()
    message = str(failure.value)
    assert "no checkpoint was written" in message and "optim.lr=1e+32" in message


def test_lr_1e9_stops_on_the_exploding_loss(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DivergenceError, match="loss_explosion_factor=100 times the median"):
        train(tiny_rnn(tmp_path, "optim.lr=1e9", "trainer.checkpoint_every=1"), run)
    assert not (run / "checkpoints").exists()


def test_infinite_validation_perplexity_is_never_a_new_best(tmp_path):
    # the run as found (the loss reached 6e10): no explosion check, a validation every update
    cfg = tiny_rnn(
        tmp_path,
        "optim.lr=1e9",
        "trainer.loss_explosion_factor=null",
        "trainer.validate_every=1",
        "trainer.early_stopping_metric=ppl",
    )
    with pytest.raises(DivergenceError, match="validation perplexity is inf"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_diverged_run_names_a_finite_checkpoint_that_resumes_at_a_lower_lr(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("trainer.max_updates=10", "trainer.checkpoint_every=2"), run)
    resume = f"trainer.resume={run}"
    # resumed at an lr that blows up the weights at its first update (11)
    blowup = tiny_config(
        resume, "optim.lr=1e33", "trainer.clip_grad_norm=null", "trainer.max_updates=40"
    )
    blowup.trainer.checkpoint_every = 2
    with pytest.raises(DivergenceError) as failure:
        train(blowup, run)
    message = str(failure.value)
    assert f"is {run}/checkpoints/last.pt (update 10)" in message
    assert f"python -m seq2seq.train trainer.resume={run} optim.lr=1e+32" in message
    assert progress_of(run)["update"] == 10 and finite(run)

    train(tiny_config(resume, "optim.lr=1e-3", "trainer.max_updates=14"), run)
    progress = progress_of(run)
    assert progress["update"] == 14 and progress["skipped_updates"] == 0
    assert all(math.isfinite(loss) for loss in progress["losses"]) and finite(run)


# ---------------------------------------------------------------- 2. resume honours changes


def test_resume_with_a_new_lr_logs_and_uses_it(tiny_config, tmp_path, caplog):
    run = tmp_path / "run"
    train(tiny_config("trainer.max_updates=6", "scheduler=constant"), run)
    saved_lr = ckpt.load_checkpoint(run)["config"]["optim"]["lr"]
    # only what changes is on the command line: the rest comes from the checkpoint
    overrides = [f"trainer.resume={run}", "optim.lr=1e-5", "trainer.max_updates=8"]
    with caplog.at_level("INFO"):
        train(tiny_config(*overrides), run, overrides=overrides)
    assert f"changed on resume: optim.lr {saved_lr:g} → 1e-05, trainer.max_updates 6 → 8" in (
        caplog.text
    )
    payload = ckpt.load_checkpoint(run / "checkpoints" / "last.pt")
    assert payload["progress"]["update"] == 8
    assert [g["lr"] for g in payload["optimizer"]["param_groups"]] == [1e-5]
    assert payload["config"]["optim"]["lr"] == 1e-5
    lrs = dict(tensorboard_scalars(run, "train/lr"))
    assert lrs[6] == pytest.approx(saved_lr) and lrs[7] == lrs[8] == pytest.approx(1e-5)


def test_resume_refuses_a_change_of_the_model_naming_the_key(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("trainer.max_updates=2"), run)
    overrides = [f"trainer.resume={run}", "model.d_model=64"]
    with pytest.raises(ResumeConfigError, match="model.d_model cannot change when resuming"):
        train(tiny_config(*overrides), run, overrides=overrides)


# ---------------------------------------------------------------- 3. one training, one directory


def test_killed_and_resumed_run_has_one_tensorboard_curve_equal_to_uninterrupted(
    reference, tiny_config, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    stop_before_update(monkeypatch, 22, kill)
    with pytest.raises(Killed):
        train(tiny_config(*CURVE), run)
    monkeypatch.undo()
    assert progress_of(run)["update"] == 20
    train(tiny_config(*CURVE, f"trainer.resume={run}"), run)

    for tag in ("train/loss", "validation/loss", "validation/bleu"):
        points = tensorboard_scalars(run, tag)
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{tag} has a step twice: {steps}"
        assert points == tensorboard_scalars(reference, tag), tag
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["updates"] == 30
    assert progress_of(run)["losses"] == progress_of(reference)["losses"]


def test_rerun_sweep_finishes_only_the_unfinished_points(tiny_config, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    budget = ("trainer.max_updates=8", "trainer.checkpoint_every=2")
    train(tiny_config(*budget), sweep / "0")  # finished
    stop_before_update(monkeypatch, 6, kill)
    with pytest.raises(Killed):
        train(tiny_config(*budget), sweep / "1")  # interrupted at update 5 (checkpoint at 4)
    monkeypatch.undo()
    finished = (sweep / "0" / "metrics.json").read_text()

    fits = []
    original_fit = Trainer.fit
    monkeypatch.setattr(
        Trainer, "fit", lambda self: fits.append(self.progress.update) or original_fit(self)
    )
    best = [train(tiny_config(*budget, "trainer.resume=auto"), sweep / str(i)) for i in range(3)]
    assert fits == [4, 0]  # point 1 continued from its checkpoint, point 2 started
    assert (sweep / "0" / "metrics.json").read_text() == finished
    assert best[0] == json.loads(finished)["train"]["best_metric"]
    assert all(progress_of(sweep / str(i))["update"] == 8 for i in range(3))


def test_a_new_run_refuses_a_directory_holding_a_run(tiny_config, tmp_path):
    train(tiny_config("trainer.max_updates=2"), tmp_path / "run")
    with pytest.raises(RunDirError, match="already holds a run .* trainer.resume="):
        train(tiny_config("trainer.max_updates=2"), tmp_path / "run")


# ---------------------------------------------------------------- 4. one owner


def test_second_process_on_a_locked_directory_fails_at_once(tiny_config, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from seq2seq.training.run_dir import RunLock\n"
            f"with RunLock({str(run)!r}):\n    print('locked', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(RunDirError, match=f"{run} is in use by process {holder.pid} on"):
            train(tiny_config(), run)
        assert time.monotonic() - start < 1
    finally:
        holder.kill()  # as kill -9: nothing can clean up, the OS releases the lock
        holder.wait()
    with RunLock(run):
        pass


# ---------------------------------------------------------------- 5. interrupts


def test_sigterm_mid_epoch_saves_last_and_the_curve_continues_exactly(
    reference, tiny_config, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    stop_before_update(monkeypatch, 22, lambda _: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(Interrupted) as stop:
        train(tiny_config(*CURVE), run)
    monkeypatch.undo()
    assert stop.value.exit_status == 143
    assert f"saved {run}/checkpoints/last.pt at update 22" in str(stop.value)
    assert f"continue with: python -m seq2seq.train trainer.resume={run}" in str(stop.value)
    saved = progress_of(run)
    assert saved["update"] == 22 and saved["epoch"] == 1 and saved["batch_in_epoch"] > 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back

    train(tiny_config(*CURVE, f"trainer.resume={run}"), run)
    assert progress_of(run)["losses"] == progress_of(reference)["losses"]


def test_resume_makes_the_run_directory_hydra_writes_the_resumed_ones(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from seq2seq.training import run_dir

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    run_dir.register_resolvers()
    for resume in (run, run / "checkpoints" / "last.pt"):
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            cfg = compose("train", [f"trainer.resume={resume}"], return_hydra_config=True)
        assert OmegaConf.select(cfg, "hydra.run.dir") == str(run)
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", ["trainer.resume=auto"], return_hydra_config=True)
    assert OmegaConf.select(cfg, "hydra.run.dir").startswith("runs/")
    # the first start's record stays; a continuation's goes beside it
    assert run_dir._hydra_output_subdir(str(run)).startswith(".hydra/resumed-")
    assert run_dir._hydra_output_subdir(str(tmp_path / "new")) == ".hydra"


def test_continued_config_is_the_checkpoints_with_the_command_lines_changes():
    from omegaconf import OmegaConf

    from seq2seq.training.resume import continued_config

    started = compose_config(
        "train",
        "data.root=/old",
        "model.hidden_size=32",
        "scheduler=one_cycle",
        "trainer.max_updates=10",
    )
    saved = OmegaConf.to_container(started, resolve=True)
    raw = OmegaConf.to_container(started, resolve=False)
    overrides = ["trainer.resume=/runs/x", "data.root=/new", "trainer.max_updates=20"]
    merged = continued_config(compose_config("train", *overrides), saved, overrides, raw)
    assert merged.model.hidden_size == 32  # the run's, not this command's default
    assert merged.scheduler._target_.endswith("one_cycle")
    assert merged.scheduler.total_updates == 20  # follows trainer.max_updates
    assert merged.data.root == merged.data.source.root == "/new"  # the same data, moved
    assert merged.trainer.resume == "/runs/x"
    refused = [*overrides, "model.hidden_size=64"]
    with pytest.raises(ResumeConfigError, match="model.hidden_size cannot change .* was 32"):
        continued_config(compose_config("train", *refused), saved, refused, raw)
