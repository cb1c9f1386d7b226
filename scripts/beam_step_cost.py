"""How much of one beam-search step of a reference model (configs/bench/) is its vocabulary
projection and log-softmax, which every hypothesis pays at every step and no exact search skips.

    python scripts/beam_step_cost.py rnn_bahdanau [--beam 5] [--steps 20] [--repeats 5]
        data.root=../shared/datasets/multi30k [other overrides of configs/train.yaml]

Builds the model and the test2016 batches as `python -m seq2seq.bench` does (untrained weights:
the cost of a step depends on its shapes, not on what the model learned) and, for the test
batches of median and largest size, runs `model.step` `--steps` times on K = `--beam` hypotheses
per sentence, as beam search does after its first step, in the search's precision; then the
output layer and log-softmax alone on as many rows. Wall-clock milliseconds per step, median of
`--repeats` passes after a warm-up, on the configured threads: a timing, so run it on a quiet
machine.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch

from seq2seq import runtime
from seq2seq.bench.models import compose_train_config, reference_models
from seq2seq.training import job
from seq2seq.training.distributed import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(reference_models()))
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = compose_train_config(reference_models()[args.model], args.overrides, 1)
    run = job.prepare_run(cfg, World(device=torch.device("cpu")))
    model = run.model.eval()
    batches = sorted(run.data.batches("test"), key=lambda b: b.size)
    print(f"{args.model}, {torch.get_num_threads()} threads, search in {run.greedy.precision}")
    for batch in (batches[len(batches) // 2], batches[-1]):
        with torch.inference_mode(), runtime.autocast(torch.device("cpu"), run.greedy.precision):
            step, project = step_and_projection_ms(model, batch, run.data.tokenizer.bos_id, args)
        print(
            f"{batch.size} sentences x {args.beam} = {batch.size * args.beam} rows, source length "
            f"{batch.src.size(1)}: step {step:.2f} ms, of which output layer + log-softmax "
            f"{project:.2f} ms ({100 * project / step:.0f}%)"
        )


def step_and_projection_ms(
    model: torch.nn.Module, batch, bos_id: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Milliseconds per decoder step, and per output layer + log-softmax on as many rows."""
    features = torch.randn(batch.size * args.beam, model.output_layer.in_features)

    def project() -> None:
        for _ in range(args.steps):
            model.output_layer(features).float().log_softmax(-1)

    steps = decoder_steps(model, batch, bos_id, args.beam, args.steps)
    step = median_ms(steps, args.repeats)
    return step / args.steps, median_ms(project, args.repeats) / args.steps


def decoder_steps(
    model: torch.nn.Module, batch, token: int, beam: int, count: int
) -> Callable[[], None]:
    """`count` decoder steps of `beam` hypotheses per sentence, each fed `token`, from the state
    beam search holds after its first step (its own bookkeeping, top-k and reordering, left
    out): a step costs the same whichever target tokens it reads."""
    start = model.init_state(model.encode(batch.src, batch.src_lengths))
    start = start.reorder(torch.arange(batch.size).repeat_interleave(beam))
    tokens = batch.src.new_full((batch.size * beam,), token)

    def run() -> None:
        state = start
        for _ in range(count):
            state = model.step(tokens, state).state

    return run


def median_ms(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        work()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main()
