"""`python -m seq2seq.bench [--models a,b] [--updates N] [--out DIR] [--joeynmt DIR] [overrides]`:
how fast the reference models of configs/bench/ train and decode, each in a fresh process of its
own (seq2seq/bench/measure.py), written to <out>/results.json and results.md with the machine,
threads, torch version, date and load average; with --joeynmt, also <out>/vs_joeynmt.md.

`python -m seq2seq.bench startup [--runs N] [--checkpoint PATH]`: how long commands take to
start (seq2seq/bench/startup.py), written to <out>/startup.json and startup.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from seq2seq import cli
from seq2seq.bench import report
from seq2seq.bench.models import reference_models

log = logging.getLogger("seq2seq.bench")
PROG = "python -m seq2seq.bench"


def parse_args(argv: list[str]) -> argparse.Namespace:
    models = reference_models()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default=",".join(models), help="comma-separated, of: " + ", ".join(models)
    )
    parser.add_argument("--updates", type=int, default=300, help="training updates per model")
    parser.add_argument(
        "--skip", type=int, default=20, help="first updates left out of the throughput"
    )
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("bench"), help="folder for results.json/.md"
    )
    parser.add_argument("--in-process", action="store_true", help="no worker process per model")
    parser.add_argument(
        "--joeynmt",
        type=Path,
        help="also write <out>/vs_joeynmt.md against JoeyNMT's results in this folder "
        "(the $RESULTS of ../shared/bench/joeynmt, see scripts/bench_vs_joeynmt.sh)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train.yaml")
    args = parser.parse_intermixed_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(models))
    if unknown or not 1 <= args.skip < args.updates:
        parser.error(f"unknown models {unknown}" if unknown else "need 1 <= --skip < --updates")
    args.models = [models[name] for name in args.models.split(",")]
    return args


def main(argv: list[str]) -> dict[str, Any]:
    if argv[:1] == ["startup"]:
        from seq2seq.bench import startup

        return startup.main(argv[1:])
    from seq2seq.bench import measure
    from seq2seq.bench.machine import machine

    args = parse_args(argv)
    settings = {"updates": args.updates, "skip": args.skip, "beam_size": args.beam_size}
    command = " ".join([PROG, *argv])
    results = {
        "machine": machine(),
        "settings": {**settings, "overrides": args.overrides, "command": command},
        "models": {},
    }
    run = measure.bench_model if args.in_process else measure.bench_isolated
    for model in args.models:
        log.info("benchmarking %s", model.name)
        measured = run(model, args.overrides, args.updates, args.skip, args.beam_size)
        results["models"][model.name] = measured
        log.info("%s: %s", model.name, measured)
    for table in report.write(args.out, results, args.joeynmt):
        print(table)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    cli.reports_errors(main)(sys.argv[1:])
