"""`python -m seq2seq.average <run dir> --last 5` (or `--best 5`, or checkpoint files -o out.pt)

Averages the weights of several checkpoints of one model into one checkpoint, as fairseq's
`average_checkpoints.py` and JoeyNMT's `average_checkpoints` do: each floating-point tensor is
the element-wise mean of the inputs' (Vaswani et al., 2017, §6.1, average the last 5 or 20).
From a run directory it takes the numbered checkpoints `checkpoints/update_<n>.pt` that training
keeps with `trainer.keep_last=N` / `trainer.keep_best=N`: the latest N, or the N with the best
validation score (`trainer.early_stopping_metric`).

The result carries the config, tokenizer and progress of the latest input, so
`python -m seq2seq.evaluate checkpoint=<file>` and `python -m seq2seq.translate` load it like
any checkpoint; it holds no optimizer state, so training cannot resume from it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seq2seq import checkpoint as ckpt
from seq2seq.training.trainer import HIGHER_IS_BETTER


def average_state_dicts(payloads: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the models' floating-point tensors (summed in float64, cast
    back); other tensors, such as integer counters, are taken from the last payload."""
    first, last = payloads[0], payloads[-1]
    for payload in payloads[1:]:
        _check_same_model(first, payload)
    averaged = {}
    for key, tensor in last["model"].items():
        if tensor.is_floating_point():
            total = sum(p["model"][key].to(torch.float64) for p in payloads)
            averaged[key] = (total / len(payloads)).to(tensor.dtype)
        else:
            averaged[key] = tensor.clone()
    return averaged


def _check_same_model(first: dict[str, Any], other: dict[str, Any]) -> None:
    where = f"{other['path']} and {first['path']}"
    if other["config"].get("model") != first["config"].get("model"):
        raise ckpt.CheckpointError(f"{where} have different model configs: cannot average them")
    if other["tokenizer"] != first["tokenizer"]:
        raise ckpt.CheckpointError(f"{where} have different tokenizers: cannot average them")
    a, b = first["model"], other["model"]
    if set(a) != set(b):
        raise ckpt.CheckpointError(
            f"{where} have different parameters: {sorted(set(a) ^ set(b))[:5]}"
        )
    for key in a:
        if a[key].shape != b[key].shape:
            raise ckpt.CheckpointError(
                f"{where} differ in the shape of {key}: "
                f"{tuple(b[key].shape)} against {tuple(a[key].shape)}"
            )


def select_numbered(run_dir: Path, *, last: int = 0, best: int = 0) -> list[Path]:
    """The latest `last`, or the `best` best by validation score, of the run's numbered
    checkpoints, oldest first."""
    directory = Path(run_dir) / ckpt.CHECKPOINT_DIR
    wanted = last or best
    found = ckpt.numbered_checkpoints(directory)
    if len(found) < wanted:
        raise ckpt.CheckpointError(
            f"{directory} holds {len(found)} numbered checkpoints (update_<n>.pt), {wanted} "
            f"wanted: train with trainer.keep_last={wanted} (or trainer.keep_best={wanted}) "
            "to keep them"
        )
    if last:
        return [path for _, path in found[-last:]]
    scores = {}
    for update, path in found:
        scores[update], metric = _validation_score(path)  # one metric: the run's
    ranked = ckpt.rank_by_score(list(scores), scores, HIGHER_IS_BETTER[metric])
    by_update = dict(found)
    return [by_update[update] for update in sorted(ranked[:best])]


def _validation_score(path: Path) -> tuple[float, str]:
    """The validation score of a numbered checkpoint at its own update, and its metric (the
    run's `trainer.early_stopping_metric`)."""
    payload = ckpt.load_checkpoint(path)
    progress, metric = payload["progress"], payload["config"]["trainer"]["early_stopping_metric"]
    validations = progress["validations"]
    if not validations or validations[-1]["update"] != progress["update"]:
        raise ckpt.CheckpointError(f"{path} has no validation score of its own update")
    return float(validations[-1][metric]), metric


def average_checkpoints(inputs: Sequence[Path], output: Path) -> Path:
    """Average `inputs` (two or more checkpoint files of one model) into `output`."""
    if len(inputs) < 2:
        raise ckpt.CheckpointError(f"averaging needs two or more checkpoints, got {len(inputs)}")
    payloads = [ckpt.load_checkpoint(path) for path in inputs]
    latest = max(payloads, key=lambda p: p["progress"]["update"])
    averaged = {
        "model": average_state_dicts(payloads),
        "config": latest["config"],
        "tokenizer": latest["tokenizer"],
        "progress": latest["progress"],
        "averaged_from": [p["path"] for p in payloads],
    }
    ckpt.save_checkpoint(averaged, Path(output))
    return Path(output)


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.average",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="a run directory, or .pt files")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--last", type=int, default=0, help="average the latest N (run dir)")
    choice.add_argument("--best", type=int, default=0, help="average the best N (run dir)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="default: <run dir>/checkpoints/average_{last,best}<N>.pt",
    )
    return parser, parser.parse_args(argv)


def _inputs_and_output(args: argparse.Namespace) -> tuple[list[Path], Path]:
    run_dir = args.inputs[0]
    if len(args.inputs) == 1 and run_dir.is_dir():
        if args.last < 2 and args.best < 2:
            raise ValueError("from a run directory, say how many: --last N or --best N (N ≥ 2)")
        mode, n = ("last", args.last) if args.last else ("best", args.best)
        default = run_dir / ckpt.CHECKPOINT_DIR / f"average_{mode}{n}.pt"
        return select_numbered(run_dir, last=args.last, best=args.best), args.output or default
    if args.last or args.best:
        raise ValueError("--last and --best choose from one run directory, not from files")
    if args.output is None:
        raise ValueError("averaging checkpoint files needs --output FILE")
    return list(args.inputs), args.output


def main(argv: Sequence[str] | None = None) -> None:
    parser, args = _parse(argv)
    try:
        inputs, output = _inputs_and_output(args)
        print(f"averaging {len(inputs)} checkpoints: {', '.join(map(str, inputs))}")
        average_checkpoints(inputs, output)
    except ValueError as err:  # CheckpointError included
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
