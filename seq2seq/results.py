"""The study's results page: `python -m seq2seq.compare runs/study --results docs/results.md`.

Writes a markdown page from the runs' own records only: what ran (the sweep's command from
Hydra's `multirun.yaml`, data, budget, seeds), on what machine and when (each run's
`metrics.json` `machine`), how long it took, the comparison table of `seq2seq.compare` with its
sacreBLEU signature, the learning curves and the attention grid (copied next to the page, by
default into `<page dir>/img/results/`), with `--ablations DIR` the same table for an
ablation sweep, and with `--curve DIR` the learning curves the study's budget was chosen from
(`make study-curve`) with the budget they give. Nothing on the page is typed by hand except
the discussion: the text between DISCUSSION_BEGIN and DISCUSSION_END is kept verbatim when
the page is written again.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seq2seq import compare, learning_curve
from seq2seq.evaluation import write_lines

DISCUSSION_BEGIN = "<!-- discussion: written by hand, kept when the page is regenerated -->"
DISCUSSION_END = "<!-- end of discussion -->"
NO_DISCUSSION = (
    "_Not written yet: what the numbers above say, each claim pointing at the numbers that "
    "support it._"
)
FIGURES = (("comparison.png", "curves"), ("attention_grid.png", "attention"))
# the README's summary of the study (`--readme`): these columns of the table, and the figures
README_BEGIN = "<!-- study summary: written by `make study`, edit seq2seq/results.py instead -->"
README_END = "<!-- end of study summary -->"
README_COLUMNS = (
    "test_bleu_beam",
    "test_bleu_greedy",
    "best_validation_bleu",
    "aer",
    "tgt_tokens_per_second",
    "beam_sentences_per_second",
)
README_FIGURES = (
    ("curves", "validation BLEU against updates and time"),
    ("attention", "the same validation sentences, every trained variant"),
)


def kept_discussion(page: Path) -> list[str]:
    """The hand-written lines between the markers of an existing page, else a placeholder."""
    if not page.exists():
        return [NO_DISCUSSION]
    lines = page.read_text().splitlines()
    if DISCUSSION_BEGIN not in lines:
        return [NO_DISCUSSION]
    begin = lines.index(DISCUSSION_BEGIN) + 1
    if DISCUSSION_END not in lines[begin:]:
        raise ValueError(
            f"{page}: the discussion starts with {DISCUSSION_BEGIN} but never ends with "
            f"{DISCUSSION_END}: add the end marker so the hand-written text can be kept"
        )
    return lines[begin : lines.index(DISCUSSION_END, begin)]


def sweep_command(sweep_dir: Path) -> str:
    """The command that launched the sweep, from the `multirun.yaml` Hydra left in it."""
    record = Path(sweep_dir) / "multirun.yaml"
    if not record.exists():
        return f"not recorded ({record} is missing)"
    overrides = OmegaConf.load(record).hydra.overrides
    hydra = [item for item in overrides.hydra if item != "hydra.mode=MULTIRUN"]  # that is -m
    return " ".join(["python -m seq2seq.train -m", *hydra, *overrides.task])


def provenance_lines(runs: Sequence[compare.Run], sweep_dir: Path) -> list[str]:
    """What ran, on what, when and for how long: every item from the runs' own records."""
    data = runs[0].metrics.get("config", {}).get("data", {})
    return [
        f"- **Command**: `{sweep_command(sweep_dir)}`",
        f"- **Data**: {data.get('name')} {data.get('src_lang')}→{data.get('tgt_lang')}; "
        f"**budget**: {', '.join(_budgets(runs))} updates per run; **seeds**: "
        f"{', '.join(map(str, _seeds(runs)))}; {len(runs)} runs",
        *machine_lines(runs),
        *time_lines(runs, sweep_jobs(sweep_dir)),
    ]


def sweep_jobs(sweep_dir: Path) -> int:
    """How many runs the sweep trained at once (the joblib launcher's n_jobs), from its
    `multirun.yaml`; 1 for Hydra's basic launcher or when not recorded."""
    record = Path(sweep_dir) / "multirun.yaml"
    if not record.exists():
        return 1
    return int(OmegaConf.select(OmegaConf.load(record), "hydra.launcher.n_jobs", default=1))


def _budgets(runs: Sequence[compare.Run]) -> list[str]:
    configs = [run.metrics.get("config", {}) for run in runs]
    return sorted({str(c.get("trainer", {}).get("max_updates")) for c in configs})


def _seeds(runs: Sequence[compare.Run]) -> list[int]:
    return sorted({run.seed for run in runs})


def _machines(runs: Sequence[compare.Run]) -> list[str]:
    return sorted({_describe(run.metrics["machine"]) for run in runs if "machine" in run.metrics})


def machine_lines(runs: Sequence[compare.Run]) -> list[str]:
    machines = _machines(runs)
    unrecorded = sum("machine" not in run.metrics for run in runs)
    lines = [f"- **Machine**: {machine}" for machine in machines]
    if unrecorded:
        lines.append(f"- **Machine**: not recorded by {unrecorded} of the {len(runs)} runs")
    return lines


def _describe(machine: dict) -> str:
    gpu = f", GPU {machine['gpu']}" if "gpu" in machine else ""
    return f"{machine['cpu']} ({machine['cpu_count']} CPUs), torch {machine['torch']}{gpu}"


def time_lines(runs: Sequence[compare.Run], jobs: int = 1) -> list[str]:
    """The runs' training hours in all and per parallel job (the machine's time for the study,
    pauses excluded), the dates they finished and the span of the study."""
    seconds = sum(run.metrics["train"]["seconds"] for run in runs)
    lines = [
        f"- **Training time**: {_duration(seconds)} in all (validation included)"
        + (
            f"; {jobs} runs at a time: ≈ {_duration(seconds / jobs)} of wall time"
            if jobs > 1
            else ""
        )
    ]
    dated = [run for run in runs if "date" in run.metrics.get("machine", {})]
    if dated:
        ends = [datetime.datetime.fromisoformat(run.metrics["machine"]["date"]) for run in dated]
        starts = [
            end - datetime.timedelta(seconds=run.metrics["train"]["seconds"])
            for end, run in zip(ends, dated)
        ]
        span = (max(ends) - min(starts)).total_seconds()
        lines.append(
            f"- **Dates**: runs finished from {min(ends).isoformat()} to {max(ends).isoformat()}; "
            f"wall time of the sweep ≈ {_duration(span)} (from the first start, taken as its "
            "end less its training time, to the last end; pauses between sittings included)"
        )
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def alignment_lines(runs: Sequence[compare.Run]) -> list[str]:
    """What the AER column was scored on and the aligners it should be read against, from the
    runs' `python -m seq2seq.align` records; nothing if no run was aligned."""
    records = [json.loads(path.read_text()) for path in compare.alignment_records(runs)]
    if not records:
        return []
    sets = sorted({f"{r['alignment']} ({r['pairs']} gold sentence pairs)" for r in records})
    references = {
        name: ref["aer"]
        for record in records
        for name, ref in record["references"].items()
        if isinstance(ref, dict)  # a skipped reference is a string saying why
    }
    shown = ", ".join(f"{name} {aer:.3f}" for name, aer in sorted(references.items()))
    return [
        f"- **AER** ({len(records)} of {len(runs)} runs aligned): attention's argmax links "
        f"against the gold links of {'; '.join(sets)}; lower is better. Reference aligners on "
        f"the same pairs: {shown or 'none recorded'}."
    ]


def copy_figures(
    sweep_dir: Path, img_dir: Path, prefix: str, page: Path, figures: Sequence = FIGURES
) -> dict[str, str]:
    """Copy the sweep's `figures` into `img_dir`; return each one's link relative to the page."""
    links = {}
    for name, kind in figures:
        if (Path(sweep_dir) / name).exists():
            target = Path(img_dir) / f"{prefix}_{kind}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(sweep_dir) / name, target)
            links[kind] = Path(os.path.relpath(target, page.parent)).as_posix()
    return links


def sweep_section(
    sweep_dir: Path, img_dir: Path, page: Path, prefix: str, **grid: Any
) -> list[str]:
    """The comparison of one sweep (its report files written first, `grid` the attention
    grid's `sentences` and `alignment`): provenance, table, curves and attention grid."""
    compare.write_report(sweep_dir, **grid)
    summaries = compare.summarise(compare.load_runs(sweep_dir))
    runs = [run for s in summaries for run in s.runs]
    links = copy_figures(sweep_dir, img_dir, prefix, page)
    lines = [
        *provenance_lines(runs, sweep_dir),
        "",
        *compare.summary_lines(summaries),
        "",
        *alignment_lines(runs),
        "",
        "<details><summary>Every run</summary>",
        "",
        *compare.runs_table(runs, sweep_dir),
        "",
        "</details>",
    ]
    if "curves" in links:
        lines += ["", f"![validation BLEU against updates and time]({links['curves']})"]
    if "attention" in links:
        lines += ["", f"![the same validation sentences, every variant]({links['attention']})"]
    return lines


def budget_section(curve_dir: Path, img_dir: Path, page: Path, study_budget: int) -> list[str]:
    """The learning curves the study's budget was chosen from (`make study-curve`), what
    `python -m seq2seq.learning_curve` reads from them, and what each curve still gains from the
    budget the study trained (`study_budget` updates) to twice it."""
    runs = compare.load_runs(curve_dir)
    budgets = [learning_curve.run_budget(run, learning_curve.TOLERANCE) for run in runs]
    compare.write_report(curve_dir)
    links = copy_figures(curve_dir, img_dir, "budget", page, FIGURES[:1])  # the curves
    return [
        *provenance_lines(runs, curve_dir),
        "",
        *learning_curve.report(budgets, learning_curve.TOLERANCE, learning_curve.StudyPlan()),
        "",
        f"The study trained {study_budget} updates per run{_budget_reason(budgets)}; from there "
        "to twice that, the curves gain:",
        "",
        *learning_curve.gain_lines(budgets, study_budget),
        "",
        *tested_lines(runs, budgets),
        "",
        f"![validation BLEU of the budget's runs against updates and time]({links['curves']})",
    ]


def tested_lines(
    runs: Sequence[compare.Run], budgets: Sequence[learning_curve.CurveBudget]
) -> list[str]:
    """What each curve's best checkpoint scored on the test set when its run ended: how far the
    recipe goes given the curve's longer budget."""
    lines = [
        "Each curve's best checkpoint (by validation BLEU) on the test set:",
        "",
        "| run | best checkpoint (update) | test BLEU greedy | test BLEU beam |",
        "|---|---:|---:|---:|",
    ]
    for run, budget in zip(runs, budgets, strict=True):
        row = run.row()
        greedy, beam = (_bleu(row[key]) for key in ("test_bleu_greedy", "test_bleu_beam"))
        lines.append(
            f"| {run.variant} seed {run.seed} | {budget.best_update} | {greedy} | {beam} |"
        )
    return lines


def _bleu(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _budget_reason(budgets: Sequence[learning_curve.CurveBudget]) -> str:
    """Why the study's budget is not a flat point of the curves, when none is flat."""
    if all(b.budget is not None for b in budgets):
        return ""
    return (
        ", which no curve above had flattened by (`configs/experiment/attention_study.yaml` "
        "says how the study's time limit set it)"
    )


def readme_summary(study_dir: Path, img_dir: Path, page: Path, readme: Path) -> list[str]:
    """The study in a few lines for the README: what ran, the headline columns per variant,
    the curves and the attention grid (the page's copies), and a link to the whole page."""
    summaries = compare.summarise(compare.load_runs(study_dir))
    runs = [run for s in summaries for run in s.runs]

    def link(path: Path) -> str:
        return Path(os.path.relpath(path, readme.parent)).as_posix()

    lines = [
        f"{_what_ran(runs, len(summaries))} (mean ± std over seeds; the whole report, with the "
        f"command, dates, every column and the discussion: [{link(page)}]({link(page)})):",
        "",
        *compare.summary_table(summaries, README_COLUMNS),
    ]
    for kind, alt in README_FIGURES:
        if (figure := img_dir / f"study_{kind}.png").exists():
            lines += ["", f"![{alt}]({link(figure)})"]
    return lines


def _what_ran(runs: Sequence[compare.Run], variants: int) -> str:
    machines = "; ".join(_machines(runs)) or "an unrecorded machine"
    return (
        f"{variants} variants, seeds {', '.join(map(str, _seeds(runs)))} ({len(runs)} runs), "
        f"{', '.join(_budgets(runs))} updates each, on {machines}"
    )


def readme_block(readme: Path) -> tuple[list[str], int, int]:
    """The README's lines and the bounds of the study summary between its markers."""
    lines = Path(readme).read_text().splitlines()
    if README_BEGIN not in lines or README_END not in lines[lines.index(README_BEGIN) :]:
        raise ValueError(
            f"{readme}: no study summary to replace: add the lines {README_BEGIN} and "
            f"{README_END} where it goes"
        )
    begin = lines.index(README_BEGIN) + 1
    return lines, begin, lines.index(README_END, begin)


# what the page's table from scripts/attention_scores.py measures
SCORES_INTRO = (
    "Each RNN run's attention scores before the softmax (or sparse normaliser), teacher-forced "
    "on validation sentences with its tested checkpoint (`python scripts/attention_scores.py "
    "<runs>`, which `make study` runs): the mean gap between a target token's two highest "
    "scores (the top weight is e^gap times the second under a softmax), their mean standard "
    "deviation, and the share of target tokens that put more than 0.99 of their weight on one "
    "source position. The Transformer's scores stay inside SDPA: dashes."
)


def read_score_table(scores: Path) -> list[str]:
    """The lines of scripts/attention_scores.py's table, read before the page is written."""
    if not Path(scores).is_file():
        raise ValueError(
            f"--scores {scores}: no such file (`python scripts/attention_scores.py <runs> > "
            f"{scores}` writes it)"
        )
    return Path(scores).read_text().splitlines()


def write_readme_summary(readme: Path, summary: Sequence[str]) -> None:
    """Replace the lines between the README's study-summary markers with `summary`."""
    lines, begin, end = readme_block(readme)
    write_lines(readme, [*lines[:begin], *summary, *lines[end:]])


def trained_updates(sweep_dir: Path) -> int:
    """The most updates any run of the sweep was configured to train (`trainer.max_updates`)."""
    return max(
        run.metrics["config"]["trainer"]["max_updates"] for run in compare.load_runs(sweep_dir)
    )


def write_results_page(  # noqa: PLR0913 - each sweep of the page, and where its figures go
    study_dir: Path,
    page: Path,
    ablation_dir: Path | None = None,
    curve_dir: Path | None = None,
    img_dir: Path | None = None,
    readme: Path | None = None,
    scores: Path | None = None,
    **grid: Any,
) -> list[str]:
    """Write the results page, and with `readme` its summary into that file's markers; the
    discussion of an existing page is kept. `scores`: scripts/attention_scores.py's table of the
    runs, shown in a section of its own. Returns the page's lines."""
    page = Path(page)
    img_dir = Path(img_dir) if img_dir else page.parent / "img" / "results"
    discussion = kept_discussion(page)  # before anything is written: a bad page stops here
    if readme is not None:
        readme_block(readme)  # likewise: a README without the markers stops here
    command = f"python -m seq2seq.compare {study_dir} --results {page}"
    command += f" --ablations {ablation_dir}" if ablation_dir is not None else ""
    command += f" --curve {curve_dir}" if curve_dir is not None else ""
    command += f" --scores {scores}" if scores is not None else ""
    score_table = read_score_table(scores) if scores is not None else None
    lines = [
        "# Results: the attention study",
        "",
        f"<!-- generated by `{command}`: edit only the discussion; the rest is rewritten "
        "from the runs -->",
    ]
    if curve_dir is not None:
        budget = budget_section(curve_dir, img_dir, page, trained_updates(study_dir))
        lines += ["", "## The budget", "", *budget]
    lines += ["", "## The study", "", *sweep_section(study_dir, img_dir, page, "study", **grid)]
    if ablation_dir is not None:
        ablations = sweep_section(ablation_dir, img_dir, page, "ablations", **grid)
        lines += ["", "## Ablations", "", *ablations]
    if score_table is not None:
        lines += ["", "## Attention scores before normalisation", "", SCORES_INTRO, ""]
        lines += score_table
    lines += ["", "## Discussion", "", DISCUSSION_BEGIN, *discussion, DISCUSSION_END]
    write_lines(page, lines)
    if readme is not None:
        write_readme_summary(readme, readme_summary(study_dir, img_dir, page, Path(readme)))
    return lines
