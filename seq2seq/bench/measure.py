"""How fast one reference model trains and decodes, measured in a process of its own.

With the model's train config (models.py) and the parts `python -m seq2seq.train` builds
(seq2seq/training/job.py: data, model, logger, Trainer):

1. training throughput: `updates` updates; target tokens/s and updates/s over the wall-clock
   time between the end of update `skip` and the end of the last one, less any validation in
   between, so start-up, the first updates and everything after training are left out;
2. decoding speed of the model as trained there: greedy and beam search on the test split, as
   `python -m seq2seq.evaluate` decodes it (token-budget batches), sentences/s and BLEU;
3. parameter count and peak memory (RSS on CPU, allocated CUDA memory on a GPU).

With `trainer.precision=auto` the trainer runs under bf16 autocast on CUDA and on CPUs with bf16
instructions, the search under bf16 on CUDA and fp32 on a CPU; the table says which precision
each model trained and decoded in.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from seq2seq import evaluation, runtime
from seq2seq.bench.models import BenchModel, compose_train_config
from seq2seq.config import validate_config
from seq2seq.inference import Translator, ValidationResult
from seq2seq.pipeline import count_parameters
from seq2seq.training import job
from seq2seq.training.distributed import World
from seq2seq.training.trainer import UpdateStats


class UpdateClock:
    """The run's real logger, plus the wall-clock time at the end of every update and the spans
    of validation (from the end of the update before it to its result)."""

    def __init__(self, inner: Any, device: torch.device) -> None:
        self.inner, self.device = inner, device
        self.stamps: list[float] = []
        self.tgt_tokens: list[int] = []
        self.excluded: list[tuple[float, float]] = []

    def train_update(self, update: int, stats: UpdateStats, lr: float) -> None:
        self.inner.train_update(update, stats, lr)
        _synchronize(self.device)
        self.stamps.append(time.perf_counter())
        self.tgt_tokens.append(stats.tgt_tokens)

    def validation(self, update: int, result: ValidationResult, model: Any = None) -> None:
        if self.stamps:
            self.excluded.append((self.stamps[-1], time.perf_counter()))
        self.inner.validation(update, result, model)

    def __getattr__(self, name: str) -> Any:  # flush, close, ...: the real logger's
        return getattr(self.inner, name)

    def throughput(self, skip: int) -> dict[str, float]:
        """Updates skip + 1 .. N: from the end of update `skip` to the end of the last one, less
        the excluded spans within that window."""
        measured = len(self.stamps) - skip
        if skip < 1 or measured < 1:
            raise ValueError(
                f"need 1 <= skip < updates to measure anything, got skip={skip} of "
                f"{len(self.stamps)} updates"
            )
        begin, end = self.stamps[skip - 1], self.stamps[-1]
        inside = sum(b - a for a, b in self.excluded if begin <= a and b <= end)
        seconds = end - begin - inside
        tokens = sum(self.tgt_tokens[skip:])
        return {
            "updates_measured": measured,
            "seconds": round(seconds, 3),
            "tgt_tokens_per_s": round(tokens / seconds, 1),
            "updates_per_s": round(measured / seconds, 3),
            "tgt_tokens_per_update": round(tokens / measured, 1),
        }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(cfg: DictConfig, run: job.Run, world: World, skip: int) -> dict[str, float]:
    """Train `run` for `trainer.max_updates` updates with the real Trainer; its throughput."""
    with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as run_dir:
        clock = UpdateClock(job.run_logger(cfg, Path(run_dir), world, run), world.device)
        job.run_trainer(cfg, run, Path(run_dir), world, clock, extras={}).fit()
        clock.close()
    return clock.throughput(skip)


def decode_speed(run: job.Run, device: torch.device, beam_size: int) -> dict[str, float]:
    """Sentences/s and BLEU of search with `beam_size` on the test split, evaluate's batches."""
    search = replace(run.search, beam_size=beam_size)
    translate = Translator(run.data.tokenizer, device, run.greedy.precision, search)
    batches = run.data.batches("test")
    _synchronize(device)
    start = time.perf_counter()
    hypotheses = translate(run.model, batches, progress=False)
    _synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "sentences": len(hypotheses),
        "batches": len(batches),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(len(hypotheses) / seconds, 2),
        # how much was generated: sentences/s of an undertrained model that rambles (JoeyNMT's
        # decode.py records the same count) say less than this
        "hyp_words": sum(len(h.split()) for h in hypotheses),
        "bleu": round(evaluation.bleu(hypotheses, run.data.references("test")).score, 2),
    }


def bench_model(
    model: BenchModel, overrides: list[str], updates: int, skip: int, beam_size: int
) -> dict[str, Any]:
    """Everything measured of one model (the body of its worker process)."""
    cfg = compose_train_config(model, overrides, updates)
    validate_config(cfg)
    load = os.getloadavg()
    world = World(device=runtime.pick_device(cfg.device))
    run = job.prepare_run(cfg, world)
    if world.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(world.device)
    train = train_throughput(cfg, run, world, skip)
    decode = {"greedy": decode_speed(run, world.device, 1)}
    decode[f"beam{beam_size}"] = decode_speed(run, world.device, beam_size)
    return {
        "overrides": [*model.overrides, *overrides],
        "joeynmt": {"peer": model.joeynmt, "goals": model.goals},
        "parameters": count_parameters(run.model),
        "threads": torch.get_num_threads(),
        "device": str(world.device),
        "precision": run.precision,
        "decoding_precision": run.greedy.precision,
        "load_average_start": [round(x, 2) for x in load],
        "train": train,
        "decode": decode,
        "peak_memory_mib": round(_peak_memory_mib(world.device), 1),
    }


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def bench_isolated(*args: Any) -> dict[str, Any]:
    """`bench_model` in a fresh process: its own peak RSS, no allocator or thread-pool state
    left over from the model before."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_worker, *args).result()


def _worker(*args: Any) -> dict[str, Any]:
    runtime.die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s")
    return bench_model(*args)
