"""Data-parallel training on 2 gloo processes, against one process over the same batches.

A run on W processes with accumulate_grad=A must make the updates of one process with
accumulate_grad=W·A: the same global micro-batches, summed gradients, the loss divided by the
group's target tokens. Float sums are reordered across processes, so parameters are compared to
1e-6 relative (with two ranks every sum has two terms, and on CPU the runs come out bit-identical);
the ranks themselves must agree exactly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import DictConfig

from seq2seq import checkpoint as ckpt
from seq2seq.train import train
from seq2seq.training.distributed import World, _export_submitit_environment
from seq2seq.training.run_dir import other_rank_overrides
from seq2seq.training.trainer import Trainer

from .conftest import REPO, TINY, compose_config

# 280 pairs make 15 micro-batches an epoch: with 2 per update the 8th update is the epoch's tail
# of one micro-batch, which leaves rank 1 without one. Dropout draws different masks when one
# process runs two micro-batches than when two run one each, so it is off.
OVERRIDES = (
    *TINY,
    "data.source.train_size=280",
    "model.dropout=0.0",
    "trainer.max_updates=12",
    "trainer.checkpoint_every=5",
)
# the 2-process run dies before this update; its last checkpoint is update 10's, written during
# update 11 once that update's loss showed the weights sane
KILL_AT = 12
RTOL, ATOL = 1e-6, 1e-7


class Killed(Exception):
    """Stands in for SIGKILL on every rank: the run stops between two updates, saving nothing."""


def _record_updates(records: list[torch.Tensor], kill_at: int | None = None) -> None:
    """Make every Trainer append its flat parameter vector after each update."""
    original = Trainer._update

    def update_and_record(self: Trainer, group):
        if self.progress.update + 1 == kill_at:
            raise Killed
        stats = original(self, group)
        records.append(torch.cat([p.detach().flatten() for p in self.model.parameters()]))
        return stats

    Trainer._update = update_and_record


def _rank(rank: int, port: int, overrides: tuple[str, ...], tmp: Path) -> None:
    """One process of a 2-process gloo run, as torchrun would start it."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    records: list[torch.Tensor] = []
    _record_updates(records, kill_at=KILL_AT)
    try:
        train(compose_config("train", *overrides), tmp / f"run{rank}")
    except Killed:
        pass
    torch.save(records, tmp / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run_dir: Path) -> list[float]:
    return ckpt.load_checkpoint(run_dir)["progress"]["losses"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return f"cache_dir={tmp_path_factory.mktemp('cache')}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache) -> tuple[Path, list[torch.Tensor]]:
    """One process, accumulate_grad=2, uninterrupted: its run directory and parameters."""
    run = tmp_path_factory.mktemp("reference") / "run"
    records: list[torch.Tensor] = []
    original = Trainer._update
    _record_updates(records)
    try:
        train(compose_config("train", *OVERRIDES, cache, "trainer.accumulate_grad=2"), run)
    finally:
        Trainer._update = original
    return run, records


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, cache) -> tuple[Path, list[list[torch.Tensor]]]:
    """2 processes, accumulate_grad=1, killed before update KILL_AT: the directory holding
    each rank's run directory, and each rank's parameters after every update."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank, args=(_free_port(), (*OVERRIDES, cache), tmp), nprocs=2, join=True)
    return tmp, [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


def test_ranks_agree_and_match_one_process_with_accumulation(reference, two_processes):
    _, expected = reference
    _, (rank0, rank1) = two_processes
    assert len(rank0) == len(rank1) == KILL_AT - 1
    for update, (p0, p1, p) in enumerate(zip(rank0, rank1, expected), start=1):
        assert torch.equal(p0, p1), f"ranks differ after update {update}"
        torch.testing.assert_close(p0, p, rtol=RTOL, atol=ATOL, msg=f"update {update}")
    assert not torch.allclose(rank0[0], rank0[-1])  # training moved the parameters


def test_only_rank_zero_writes_run_files(two_processes):
    tmp, _ = two_processes
    assert not (tmp / "run1").exists()
    # the checkpoint due at update 10 is written during update 11, once its loss shows it sane
    assert ckpt.load_checkpoint(tmp / "run0")["progress"]["update"] == 10
    assert len(list((tmp / "run0" / "tensorboard").rglob("events.out.tfevents.*"))) == 1


def test_two_process_checkpoint_resumes_on_one_process(reference, two_processes, cache):
    ref_run, expected = reference
    tmp, _ = two_processes
    saved = ckpt.load_checkpoint(tmp / "run0")["progress"]
    assert saved["update"] == 10 and saved["epoch"] == 1 and 0 < saved["batch_in_epoch"]
    records: list[torch.Tensor] = []
    original = Trainer._update
    _record_updates(records)
    try:
        resume = f"trainer.resume={tmp / 'run0'}"
        cfg = compose_config("train", *OVERRIDES, cache, "trainer.accumulate_grad=2", resume)
        train(cfg, tmp / "resumed")
    finally:
        Trainer._update = original
    assert len(records) == 2  # updates 11 and 12
    torch.testing.assert_close(records[-1], expected[-1], rtol=RTOL, atol=ATOL)
    losses, ref_losses = _losses(tmp / "resumed"), _losses(ref_run)
    assert len(losses) == len(ref_losses) == 12
    assert losses == pytest.approx(ref_losses, rel=RTOL)


def test_torchrun_continues_a_one_process_run_and_writes_one_run_directory(
    reference, cache, tmp_path
):
    ref_run, _ = reference
    command = [
        str(Path(sys.executable).with_name("torchrun")),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "seq2seq.train",
        *OVERRIDES,
        cache,
        "trainer.max_updates=14",
        f"trainer.resume={ref_run}",
        "hydra.run.dir=run",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["run"]  # rank 1 made no Hydra directory or log
    run = tmp_path / "run"
    assert len(list((run / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]
    losses = _losses(run)
    assert len(losses) == 14 and losses[:12] == _losses(ref_run)
    assert json.loads((run / "metrics.json").read_text())["train"]["updates"] == 14


def test_each_rank_takes_a_disjoint_share_and_an_empty_share_has_weight_zero():
    group = [f"batch{i}" for i in range(5)]  # micro_steps only routes the batches
    shares = [World(rank=r, size=3).micro_steps(group) for r in range(3)]
    assert [[s.batch for s in share] for share in shares] == [
        ["batch0", "batch3"],
        ["batch1", "batch4"],
        ["batch2"],
    ]
    assert all(s.weight == 1.0 for share in shares for s in share)
    assert [[s.sync for s in share] for share in shares] == [[False, True], [False, True], [True]]
    (stand_in,) = World(rank=2, size=3).micro_steps(group[:2])
    assert stand_in.weight == 0.0 and stand_in.sync


def test_hydra_writes_nothing_for_ranks_above_zero(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    assert other_rank_overrides() == []
    monkeypatch.setenv("RANK", "1")
    hydra_cfg = _hydra_config(*other_rank_overrides())
    assert hydra_cfg.run.dir == "." and hydra_cfg.output_subdir is None
    assert "file" not in hydra_cfg.job_logging.handlers


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = _hydra_config("hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4").launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4  # one process per GPU


def test_a_slurm_job_of_several_tasks_is_described_as_torchrun_would(monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(os, "environ", {})  # what the export writes vanishes with the test
    os.environ.update(
        SUBMITIT_EXECUTOR="slurm",
        SLURM_JOB_ID="42",
        SLURM_NTASKS="4",
        SLURM_JOB_NUM_NODES="2",
        SLURM_JOB_NODELIST="gpu[07-08]",
        SLURM_PROCID="3",
        SLURM_LOCALID="1",
    )
    _export_submitit_environment()
    assert {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")} == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "gpu07",
    }
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # process LOCAL_RANK takes GPU LOCAL_RANK


def _hydra_config(*overrides: str) -> DictConfig:
    with hydra.initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra.compose("train", list(overrides), return_hydra_config=True).hydra
