"""A NaN on one rank of a 2-process gloo run: no rank applies it, no checkpoint holds it.

Only rank 1's loss is poisoned; the trainer sums the loss over ranks before checking it, so
both ranks must see it and take the same decision (a rank that went on alone into the next
all-reduce would hang its partner, which the join timeout turns into a failure).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from seq2seq import checkpoint as ckpt
from seq2seq.train import train
from seq2seq.training import trainer as trainer_module
from seq2seq.training.trainer import Trainer

from .conftest import TINY, compose_config
from .test_arithmetic import finite
from .test_distributed import _free_port

POISONED_CALL = 3  # rank 1's 3rd micro-batch: update 3, one micro-batch per rank and update


def _rank(rank: int, port: int, tmp: Path) -> None:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    calls = {"n": 0}

    def cross_entropy(*args, **kwargs):
        calls["n"] += 1
        loss = F.cross_entropy(*args, **kwargs)
        return loss * math.nan if rank == 1 and calls["n"] == POISONED_CALL else loss

    trainer_module.F = SimpleNamespace(cross_entropy=cross_entropy)
    trainers: list[Trainer] = []
    original = Trainer._update

    def update(self: Trainer, group):
        trainers[:] = [self]
        return original(self, group)

    Trainer._update = update
    overrides = (*TINY, f"cache_dir={tmp / 'cache'}", "trainer.max_updates=6")
    try:
        train(compose_config("train", *overrides, "trainer.checkpoint_every=1"), tmp / f"run{rank}")
        raised = False
    except FloatingPointError:
        raised = True
    (model,) = [t.model for t in trainers]
    result = {"raised": raised, "finite": finite(model.state_dict().values())}
    (tmp / f"rank{rank}.json").write_text(json.dumps(result))
    torch.save(model.state_dict(), tmp / f"rank{rank}.pt")


def test_a_nan_on_one_rank_is_applied_by_no_rank(tmp_path):
    context = mp.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=_rank, args=(r, port, tmp_path)) for r in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    hung = [p.pid for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
    assert not hung, "a rank hung: the ranks took different decisions on the NaN"
    assert [p.exitcode for p in processes] == [0, 0]

    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1], "the ranks took different decisions"
    assert results[0]["finite"], "a non-finite update was applied"
    weights = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    saved = ckpt.load_checkpoint(tmp_path / "run0" / "checkpoints" / "last.pt")
    assert finite(saved["model"].values())
