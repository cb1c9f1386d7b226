"""`python -m seq2seq.learning_curve <sweep dir>`: the update budget at which BLEU has flattened.

Reads the validation curves (greedy validation BLEU against updates) of the runs under the
directory, e.g. those of `make study-curve`, and prints for each run the budget by the criterion

    the smallest validated update u whose best validation BLEU so far is within `--tolerance`
    (1 BLEU) of the best seen up to 2u,

which needs a curve measured to at least 2u. Training keeps the best checkpoint, so a run stopped
at u scores the best so far; a curve too short to show the flattening says so rather than
guessing. The study budget is the largest of the runs' budgets (one budget for every variant),
and with `--study-runs N` the time the study would take is estimated from the runs' measured
seconds per update (validation included, so an upper bound when the study validates less often).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from seq2seq.compare import Run, load_runs

TOLERANCE = 1.0  # BLEU: how close to the best seen at twice the budget counts as flat


@dataclass(frozen=True)
class CurveBudget:
    """What one run's curve says about the budget."""

    variant: str
    seed: int
    measured_updates: int
    best_bleu: float
    best_update: int
    budget: int | None  # None: the curve does not reach twice any flat point
    bleu_at_budget: float | None
    seconds_per_update: float


def best_so_far(curve: Sequence[tuple[int, float]], update: int) -> float:
    """The best BLEU of the validations at or before `update` (curve: (update, bleu) sorted)."""
    return max((bleu for u, bleu in curve if u <= update), default=float("-inf"))


def flat_budget(curve: Sequence[tuple[int, float]], tolerance: float = TOLERANCE) -> int | None:
    """The smallest validated update u with best_so_far(u) ≥ best_so_far(2u) − tolerance, among
    those whose 2u the curve reaches; None when there is none."""
    curve = sorted(curve)
    if not curve:
        return None
    last = curve[-1][0]
    for update, _ in curve:
        if 2 * update > last:
            return None
        if best_so_far(curve, update) >= best_so_far(curve, 2 * update) - tolerance:
            return update
    return None


def run_budget(run: Run, tolerance: float) -> CurveBudget:
    curve = sorted((int(v["update"]), float(v["bleu"])) for v in run.metrics["validations"])
    if not curve:
        raise ValueError(f"{run.path / 'metrics.json'} has no validations")
    budget = flat_budget(curve, tolerance)
    best_update, best_bleu = max(curve, key=lambda point: (point[1], -point[0]))
    train = run.metrics["train"]
    return CurveBudget(
        variant=run.variant,
        seed=run.seed,
        measured_updates=curve[-1][0],
        best_bleu=best_bleu,
        best_update=best_update,
        budget=budget,
        bleu_at_budget=None if budget is None else best_so_far(curve, budget),
        seconds_per_update=train["seconds"] / max(train["updates"], 1),
    )


def report(budgets: Sequence[CurveBudget], tolerance: float, study_runs: int | None) -> list[str]:
    lines = [
        f"criterion: best validation BLEU within {tolerance:g} of the best seen at twice the "
        "budget",
        "",
        "| run | updates measured | best BLEU (update) | budget | BLEU by budget | s/update |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in budgets:
        budget = "not flat yet" if b.budget is None else f"{b.budget}"
        at_budget = "–" if b.bleu_at_budget is None else f"{b.bleu_at_budget:.2f}"
        lines.append(
            f"| {b.variant} seed {b.seed} | {b.measured_updates} | {b.best_bleu:.2f} "
            f"({b.best_update}) | {budget} | {at_budget} | {b.seconds_per_update:.3f} |"
        )
    unflat = [f"{b.variant} seed {b.seed}" for b in budgets if b.budget is None]
    if unflat:
        lines += ["", f"no budget: {', '.join(unflat)} still climbing; measure a longer curve"]
        return lines
    study_budget = max(b.budget for b in budgets if b.budget is not None)
    lines += [
        "",
        f"study budget: study_updates: {study_budget}  (configs/experiment/attention_study.yaml)",
    ]
    if study_runs:
        mean = sum(b.seconds_per_update for b in budgets) / len(budgets)
        hours = study_runs * study_budget * mean / 3600
        lines.append(
            f"estimated study time: {study_runs} runs × {study_budget} updates × {mean:.3f} "
            f"s/update (mean of these runs) = {hours:.1f} h, one run at a time"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.learning_curve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", help="directory holding the runs' metrics.json")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="BLEU (default 1)")
    parser.add_argument("--study-runs", type=int, help="runs of the study, for a time estimate")
    args = parser.parse_args(argv)
    try:
        budgets = [run_budget(run, args.tolerance) for run in load_runs(args.sweep_dir)]
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print("\n".join(report(budgets, args.tolerance, args.study_runs)))


if __name__ == "__main__":
    main(sys.argv[1:])
