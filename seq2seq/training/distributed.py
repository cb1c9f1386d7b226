"""Data-parallel training with `torch.distributed`, in processes started by torchrun.

Every process holds the whole data set and builds the same global list of micro-batches for an
epoch (it depends on seed and epoch only). One optimizer update consumes the next
`world_size × accumulate_grad` of them: rank r takes micro-batches r, r + W, r + 2W, ... of that
group, gradients are summed over ranks by DistributedDataParallel, and the loss is divided by the
target tokens of the whole group. A run on W processes therefore makes the same updates as one
process with `accumulate_grad` multiplied by W, and progress is counted in global micro-batches,
so a checkpoint resumes on any number of processes.

An epoch's last group may hold fewer micro-batches than there are ranks. A rank left without
one runs a stand-in micro-batch with weight 0: it joins the gradient all-reduce (which would
otherwise wait for it forever) and adds nothing, so no batch is dropped.

Rank 0 alone writes run files and decodes validation sets; the others receive its results, so
every rank takes the same early-stopping decision.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel

from seq2seq.data import PreparedData, Tokenizer, prepare_data
from seq2seq.data.batch import Batch

log = logging.getLogger(__name__)

T = TypeVar("T")

# Collectives wait this long for a late rank. The default (10 min with NCCL) is shorter than
# rank 0 may take to decode a large validation set while the other ranks wait for its BLEU.
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class MicroStep:
    """One forward/backward of a rank within an update."""

    batch: Batch
    weight: float  # 1, or 0 for the stand-in of a rank whose share of an epoch's tail is empty
    sync: bool  # this rank's last micro-step: its backward all-reduces the gradients


@dataclass(frozen=True)
class World:
    """The processes of a data-parallel run and this process's place among them."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  # on CUDA, GPU LOCAL_RANK of this node

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, writes checkpoints and decodes."""
        return self.rank == 0

    def micro_steps(self, group: list[Batch]) -> list[MicroStep]:
        """This rank's share of an update's `group` of consecutive global micro-batches."""
        share = group[self.rank :: self.size]
        if not share:
            return [MicroStep(group[0], weight=0.0, sync=True)]
        return [MicroStep(b, 1.0, sync=i == len(share) - 1) for i, b in enumerate(share)]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train with: DDP summing gradients over ranks, or `model` itself."""
        if self.size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
        ddp.register_comm_hook(state=None, hook=_sum_gradients)
        return ddp

    def sum(self, value: torch.Tensor) -> float:
        """`value` summed over ranks."""
        if self.size > 1:
            value = value.detach().clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return float(value)

    def max(self, value: float) -> float:
        """The largest of the ranks' `value`s, e.g. the wall-clock time of an update."""
        if self.size == 1:
            return value
        tensor = torch.tensor(value, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor)

    def from_main(self, compute: Callable[[], T]) -> T:
        """`compute()` run on rank 0 only, its result sent to every rank."""
        if self.size == 1:
            return compute()
        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def gradient_sync(model: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Around a micro-step's forward: DDP then skips the all-reduce in the backward unless
    `sync` (gradients of earlier micro-steps accumulate locally and go with the last one's)."""
    if sync or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


# unannotated: DDP checks the annotations' objects, which `from __future__ import annotations`
# turns into strings
def _sum_gradients(state, bucket):  # (None, dist.GradBucket) -> Future[Tensor]
    """DDP's default hook averages over ranks; each rank's loss is already divided by the global
    target-token count of the update, so the gradients are summed instead."""
    work = dist.all_reduce(bucket.buffer(), op=dist.ReduceOp.SUM, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


@contextlib.contextmanager
def join(device: torch.device) -> Iterator[World]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), with NCCL
    on CUDA (process LOCAL_RANK takes GPU LOCAL_RANK) and gloo on CPU; leave it on exit.
    Without torchrun this is a one-process world on `device`."""
    _export_submitit_environment()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield World(device=device)
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = _local_gpu(local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    if rank != 0:  # one copy of the log is enough; problems still show on every rank
        logging.getLogger().setLevel(logging.WARNING)
    log.info("data-parallel training on %d processes (%s)", size, dist.get_backend())
    try:
        yield World(rank, size, device)
    finally:
        dist.destroy_process_group()


def _local_gpu(local_rank: int) -> torch.device:
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(
            f"process LOCAL_RANK={local_rank} has no GPU: this node has {count}; start at most "
            f"{count} processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def _export_submitit_environment() -> None:
    """A job of several tasks from a submitit launcher (hydra/launcher=slurm): describe it as
    torchrun would; submitit starts one process per task but sets no torch.distributed variables."""
    if "WORLD_SIZE" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return
    from submitit import JobEnvironment  # the optional `slurm` extra, present in submitit jobs
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def prepare_shared_data(
    world: World, data_cfg: DictConfig, tokenizer_cfg: DictConfig, cache_dir: str | Path, seed: int
) -> PreparedData:
    """`prepare_data` on every rank with rank 0's tokenizer.

    Rank 0 goes first (it downloads and trains the tokenizer into the cache); the others then
    encode with its tokenizer, so no two ranks can disagree on the vocabulary, even on nodes that
    do not share the cache directory.
    """
    data = prepare_data(data_cfg, tokenizer_cfg, cache_dir, seed) if world.is_main else None
    tokenizer = world.from_main(lambda: data.tokenizer.to_bytes())
    if data is None:
        data = prepare_data(
            data_cfg, tokenizer_cfg, cache_dir, seed, tokenizer=Tokenizer.from_bytes(tokenizer)
        )
    return data
