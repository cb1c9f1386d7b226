"""CPU time per training update of a reference model (configs/bench/), for comparing code paths
on a busy machine, where wall-clock timings mean little.

    python scripts/update_cpu_time.py rnn_luong_general [--updates 20] [--repeats 5]
        data.root=../shared/datasets/multi30k [other overrides of configs/train.yaml]

Builds the model, optimiser and Multi30k batches as `python -m seq2seq.bench` does (the first
`--updates` training batches of epoch 0), sets one thread, and trains those updates `--repeats`
times, each from the same weights and seed: time.process_time() per update, median of the repeats
(first pass a warm-up).
CPU time, not a benchmark: other processes on the machine still slow it down somewhat.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from seq2seq import runtime
from seq2seq.bench.models import compose_train_config, reference_models
from seq2seq.training import job
from seq2seq.training.distributed import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(reference_models()))
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = compose_train_config(reference_models()[args.model], args.overrides, args.updates)
    run = job.prepare_run(cfg, World(device=torch.device("cpu")))
    torch.set_num_threads(1)
    batches = run.data.batches("train")[: args.updates]
    train = Updates(run.model, instantiate(cfg.optim), batches, run.precision)
    train.one_pass()  # warm-up
    passes = [train.one_pass() for _ in range(args.repeats)]
    print(
        f"{args.model} ({run.precision}): {statistics.median(passes):.1f} ms CPU per update "
        f"(median of {args.repeats} passes of {args.updates} updates: "
        f"{[round(p, 1) for p in passes]}); last loss {train.last_loss:.4f}"
    )


class Updates:
    """The same updates, each pass from the same weights and seed."""

    def __init__(self, model: torch.nn.Module, optimizer, batches: list, precision: str) -> None:
        self.model, self.batches, self.precision = model.train(), batches, precision
        self.optimizer = optimizer(model.parameters())
        self.start = {k: v.clone() for k, v in model.state_dict().items()}
        self.last_loss = float("nan")

    def one_pass(self) -> float:
        """Milliseconds of CPU time per update over one pass."""
        self.model.load_state_dict(self.start)  # the optimiser's moments carry on: same work
        torch.manual_seed(0)
        begin = time.process_time()
        for batch in self.batches:
            self.last_loss = self.update(batch)
        return (time.process_time() - begin) / len(self.batches) * 1000

    def update(self, batch) -> float:
        """The trainer's update (seq2seq/training/trainer.py) without its bookkeeping."""
        scored = batch.tgt_out != self.model.pad_id
        with runtime.autocast(torch.device("cpu"), self.precision):
            logits = self.model(batch.src, batch.src_lengths, batch.tgt_in, positions=scored).logits
        loss = F.cross_entropy(logits.float(), batch.tgt_out[scored], reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        (loss / scored.sum()).backward()
        self.optimizer.step()
        return loss.item() / int(scored.sum())


if __name__ == "__main__":
    main()
