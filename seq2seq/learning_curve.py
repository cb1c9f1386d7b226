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

With `--max-hours H --jobs J` the study must fit H hours running J runs at a time (at the runs'
mean seconds per update, or `--seconds-per-update`): when the flat budget does not fit (or no
curve is flat yet), the budget is the largest multiple of 500 updates that does, and the report
says for each run how far its curve still climbs from that budget to twice it, so the study
states what the time limit costs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from seq2seq.compare import Run, load_runs

TOLERANCE = 1.0  # BLEU: how close to the best seen at twice the budget counts as flat
BUDGET_STEP = 500  # a time-limited budget is a multiple of the study's validation interval


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
    curve: tuple[tuple[int, float], ...] = ()


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
        curve=tuple(curve),
    )


def report(budgets: Sequence[CurveBudget], tolerance: float, plan: StudyPlan) -> list[str]:
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
    flat = None if unflat else max(b.budget for b in budgets if b.budget is not None)
    cap = plan.time_limited_budget(budgets)
    if cap is not None and (flat is None or cap < flat):
        return lines + plan.capped_lines(budgets, cap, flat, unflat)
    if flat is None:
        return lines + [
            "",
            f"no budget: {', '.join(unflat)} still climbing; measure a longer curve",
        ]
    return lines + ["", _budget_line(flat), *plan.time_lines(budgets, flat)]


def _budget_line(budget: int) -> str:
    return f"study budget: study_updates: {budget}  (configs/experiment/attention_study.yaml)"


@dataclass(frozen=True)
class StudyPlan:
    """How many runs the study trains, how many at a time, and in how many hours at most."""

    runs: int | None = None
    jobs: int = 1
    max_hours: float | None = None
    seconds_per_update: float | None = None  # given: instead of the curves' own mean

    def mean_seconds(self, budgets: Sequence[CurveBudget]) -> float:
        if self.seconds_per_update is not None:
            return self.seconds_per_update
        return sum(b.seconds_per_update for b in budgets) / len(budgets)

    def hours(self, budgets: Sequence[CurveBudget], updates: int) -> float:
        return (self.runs or 0) * updates * self.mean_seconds(budgets) / self.jobs / 3600

    def time_limited_budget(self, budgets: Sequence[CurveBudget]) -> int | None:
        """The largest multiple of BUDGET_STEP updates whose study fits max_hours."""
        if not (self.runs and self.max_hours):
            return None
        per_step = self.hours(budgets, BUDGET_STEP)
        return int(self.max_hours // per_step) * BUDGET_STEP if per_step > 0 else None

    def time_lines(self, budgets: Sequence[CurveBudget], updates: int) -> list[str]:
        if not self.runs:
            return []
        at_a_time = "one run at a time" if self.jobs == 1 else f"{self.jobs} runs at a time"
        source = "given" if self.seconds_per_update is not None else "mean of these runs"
        return [
            f"estimated study time: {self.runs} runs × {updates} updates × "
            f"{self.mean_seconds(budgets):.3f} s/update ({source}) = "
            f"{self.hours(budgets, updates):.1f} h, {at_a_time}"
        ]

    def capped_lines(
        self, budgets: Sequence[CurveBudget], cap: int, flat: int | None, unflat: list[str]
    ) -> list[str]:
        """The time-limited budget, and how far each curve still climbs from it to twice it."""
        why = f"the flat budget {flat} does not" if flat else f"{', '.join(unflat)} not flat yet;"
        lines = ["", f"{why} fit {self.max_hours:g} h: the time limit sets the budget", ""]
        lines += gain_lines(budgets, cap)
        return lines + ["", _budget_line(cap), *self.time_lines(budgets, cap)]


def gain_lines(budgets: Sequence[CurveBudget], budget: int) -> list[str]:
    """A table of how much each curve still gains from `budget` updates to twice that."""
    lines = ["| run | best BLEU by budget | best by twice the budget | still to gain |"]
    lines += ["|---|---:|---:|---:|"]
    for b in budgets:
        at_budget, at_twice = best_so_far(b.curve, budget), best_so_far(b.curve, 2 * budget)
        measured = "" if 2 * budget <= b.measured_updates else f" (to {b.measured_updates})"
        lines.append(
            f"| {b.variant} seed {b.seed} | {at_budget:.2f} | {at_twice:.2f}{measured} "
            f"| {at_twice - at_budget:.2f} |"
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
    parser.add_argument("--jobs", type=int, default=1, help="study runs at a time (default 1)")
    parser.add_argument("--max-hours", type=float, help="the most the study may take")
    parser.add_argument(
        "--seconds-per-update",
        type=float,
        help="a study run's wall seconds per update (validation included) at --jobs runs at a "
        "time, where the curves' own mean would mislead (e.g. they shared the machine)",
    )
    args = parser.parse_args(argv)
    if args.max_hours is not None and not args.study_runs:
        parser.exit(2, "error: --max-hours needs --study-runs\n")
    try:
        budgets = [run_budget(run, args.tolerance) for run in load_runs(args.sweep_dir)]
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    plan = StudyPlan(args.study_runs, args.jobs, args.max_hours, args.seconds_per_update)
    print("\n".join(report(budgets, args.tolerance, plan)))


if __name__ == "__main__":
    main(sys.argv[1:])
