"""`python -m seq2seq.compare <sweep dir>`: which variant works best, at what cost.

Reads the `metrics.json` of every training run under the directory (e.g. the sweep of
`python -m seq2seq.train -m experiment=compare_attention`) and writes into it:
- `comparison.md`: one row per variant, mean ± sample standard deviation over its runs (seeds)
  and their number n, best first; then one row per run. It is also printed.
- `comparison.csv`: the per-variant rows (`<metric>_mean`, `<metric>_std`, n, note).
- `runs.csv`: the per-run rows.
- `comparison.png`: validation BLEU against updates and against training time, one colour per
  variant.
- `attention_grid.png`: the same validation sentences' attention (`--sentences`, default the
  first three) for each variant, one row per variant (from its first run that has an
  `attention.json`); with `--alignment <set>`, pairs of that gold set instead, with their gold
  links drawn on (from `python -m seq2seq.align`).
With `--results PAGE` it also writes the study's results page (`seq2seq/results.py`), and with
`--readme README.md` its summary between that file's study-summary markers.

Runs are grouped by the name of their directory less `_seed<seed>` (a sweep's subdir: the
variant, or `<variant>_<ablation>` in an ablation sweep), else by their variant.

The column "last-N average" is the test BLEU of the average of the run's last N checkpoints
(`python -m seq2seq.average <run> --last N`, then `python -m seq2seq.evaluate` on it, as
`make ablations` does). Besides BLEU, each run shows its attention: the AER of its
`python -m seq2seq.align` result (`<run>/eval/align.<set>/metrics.json`, when one was
computed; the gold set of the run's language pair) and the attention diagnostics `attn_*`
(`seq2seq/diagnostics.py`) of the validation whose checkpoint was tested.

Seed noise: variants are ranked by mean test BLEU (beam search when every run has it, else
greedy). A variant whose mean lies within one standard deviation of the best one's (the larger
of the two deviations) is marked "within noise of best": the sweep does not separate them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seq2seq import plots
from seq2seq.evaluation import write_lines
from seq2seq.training.run_logger import ATTENTION_FILE

# per-run numbers: key, column header, format of one value
METRICS: tuple[tuple[str, str, str], ...] = (
    ("parameters", "parameters", "{:,.0f}"),
    ("train_minutes", "train min", "{:.2f}"),
    ("tgt_tokens_per_second", "tgt tok/s", "{:,.0f}"),
    ("best_validation_bleu", "best val BLEU", "{:.2f}"),
    ("test_bleu_greedy", "test BLEU greedy", "{:.2f}"),
    ("test_bleu_beam", "test BLEU beam", "{:.2f}"),
    ("averaged_test_bleu_beam", "test BLEU beam, last-N average", "{:.2f}"),
    ("test_chrf_greedy", "test chrF greedy", "{:.2f}"),
    ("test_chrf_beam", "test chrF beam", "{:.2f}"),
    ("greedy_sentences_per_second", "greedy sent/s", "{:.1f}"),
    ("beam_sentences_per_second", "beam sent/s", "{:.1f}"),
    ("aer", "AER", "{:.3f}"),
    ("attn_entropy", "attn entropy", "{:.2f}"),
    ("attn_monotonicity", "attn monotonicity", "{:.2f}"),
    ("attn_eos_share", "attn on EOS", "{:.2f}"),
    ("attn_uncovered", "uncovered src", "{:.2f}"),
    ("attn_center_distance", "p_t to argmax", "{:.2f}"),
)
DIAGNOSTICS = tuple(key for key, _, _ in METRICS if key.startswith("attn_"))
WITHIN_NOISE = "within noise of best"
ALIGN_PREFIX = "align."  # seq2seq.align writes <run>/eval/align.<set>/


@dataclass
class Run:
    """One training run: where it is and its metrics.json."""

    path: Path
    metrics: dict[str, Any]

    @property
    def variant(self) -> str:
        return str(self.metrics["variant"])

    @property
    def seed(self) -> int:
        return int(self.metrics["seed"])

    @property
    def name(self) -> str:
        """What the report groups the run under: its directory's name without `_seed<seed>`
        (a sweep's subdir, e.g. `bahdanau_seed1` or an ablation's `rnn_dropout0.1_seed1`),
        else its variant."""
        stem, _, seed = self.path.name.rpartition("_seed")
        return stem if stem and seed == str(self.seed) else self.variant

    def row(self) -> dict[str, float]:
        """The numbers of the report, NaN where the run has none (e.g. no beam search)."""
        m, train = self.metrics, self.metrics["train"]
        greedy, beam = m["test"].get("greedy", {}), _beam_result(m["test"])
        bleus = [v["bleu"] for v in m["validations"]]
        return {
            "parameters": float(m["parameters"]),
            "train_minutes": train["seconds"] / 60,
            "tgt_tokens_per_second": train["tgt_tokens_per_second"],
            "best_validation_bleu": max(bleus, default=math.nan),
            "test_bleu_greedy": greedy.get("bleu", math.nan),
            "test_bleu_beam": beam.get("bleu", math.nan),
            "averaged_test_bleu_beam": self.averaged_bleu(),
            "test_chrf_greedy": greedy.get("chrf", math.nan),
            "test_chrf_beam": beam.get("chrf", math.nan),
            "greedy_sentences_per_second": greedy.get("sentences_per_second", math.nan),
            "beam_sentences_per_second": beam.get("sentences_per_second", math.nan),
            "aer": self.aer(),
            **{key: self.tested_validation().get(key, math.nan) for key in DIAGNOSTICS},
        }

    def tested_validation(self) -> dict[str, float]:
        """The validation of the checkpoint that was tested (the best), else the last one."""
        validations = self.metrics["validations"]
        best = self.metrics["train"].get("best_update")
        tested = [v for v in validations if v.get("update") == best]
        return (tested or validations or [{}])[-1]

    def averaged_bleu(self) -> float:
        """Test BLEU (beam search) of the average of the run's last N checkpoints, scored by
        `python -m seq2seq.evaluate` (`make ablations` does both); NaN if never scored."""
        found = sorted(self.path.glob("eval/test.beam*.average_last*/metrics.json"))
        return json.loads(found[0].read_text())["bleu"] if found else math.nan

    def aer(self) -> float:
        """The model's AER from `python -m seq2seq.align` on this run, NaN if not run."""
        found = self.alignment_record()
        return json.loads(found.read_text())["model"]["aer"] if found else math.nan

    def alignment_record(self) -> Path | None:
        """The `metrics.json` of `python -m seq2seq.align` on this run (the first gold set's)."""
        return next(iter(sorted(self.path.glob(f"eval/{ALIGN_PREFIX}*/metrics.json"))), None)


def alignment_records(runs: Sequence[Run]) -> list[Path]:
    """The alignment records of the runs that have one."""
    return [found for run in runs if (found := run.alignment_record()) is not None]


@dataclass
class VariantSummary:
    """The runs of one variant: mean, sample standard deviation (NaN for one run) and n."""

    variant: str
    runs: list[Run]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.runs)


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every training run's metrics.json under `sweep_dir`, ordered by variant then seed.

    Files without training results (e.g. `python -m seq2seq.evaluate`'s) are skipped.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir} is not a directory (expected a sweep or run directory)")
    runs = []
    for path in sorted(sweep_dir.rglob("metrics.json")):
        metrics = json.loads(path.read_text())
        if {"variant", "seed", "train", "test", "validations"} <= metrics.keys():
            runs.append(Run(path.parent, metrics))
    if not runs:
        raise ValueError(
            f"no training run's metrics.json under {sweep_dir}: point at the sweep directory of "
            "`python -m seq2seq.train -m experiment=compare_attention` (hydra.sweep.dir) once "
            "its runs have finished"
        )
    return sorted(runs, key=lambda run: (run.name, run.seed, str(run.path)))


def summarise(runs: Sequence[Run]) -> list[VariantSummary]:
    """One summary per variant, best mean headline test BLEU first, with noise notes."""
    by_variant: dict[str, list[Run]] = {}
    for run in runs:
        by_variant.setdefault(run.name, []).append(run)
    summaries = []
    for variant, group in by_variant.items():
        rows = [run.row() for run in group]
        mean = {key: _mean([row[key] for row in rows]) for key, _, _ in METRICS}
        std = {key: _std([row[key] for row in rows]) for key, _, _ in METRICS}
        summaries.append(VariantSummary(variant, group, mean, std))
    key = headline_metric(runs)
    summaries.sort(key=lambda s: -s.mean[key] if not math.isnan(s.mean[key]) else math.inf)
    _mark_noise(summaries, key)
    return summaries


def headline_metric(runs: Sequence[Run]) -> str:
    """Test BLEU with beam search if every run has it, else greedy."""
    has_beam = all(not math.isnan(run.row()["test_bleu_beam"]) for run in runs)
    return "test_bleu_beam" if has_beam else "test_bleu_greedy"


def _mark_noise(summaries: list[VariantSummary], key: str) -> None:
    if not summaries or math.isnan(summaries[0].mean[key]):
        return
    best = summaries[0]
    best.note = "best"
    for other in summaries[1:]:
        spreads = [x for x in (best.std[key], other.std[key]) if not math.isnan(x)]
        if spreads and best.mean[key] - other.mean[key] <= max(spreads):
            other.note = WITHIN_NOISE


def markdown_report(summaries: Sequence[VariantSummary], sweep_dir: Path) -> list[str]:
    runs = [run for s in summaries for run in s.runs]
    return [
        f"# Comparison of {len(summaries)} variants ({len(runs)} runs) in {sweep_dir}",
        "",
        *summary_lines(summaries),
        "",
        "## Runs",
        "",
        *runs_table(runs, sweep_dir),
    ]


def summary_lines(summaries: Sequence[VariantSummary]) -> list[str]:
    """How the table reads, the BLEU signature, and one row per variant."""
    runs = [run for s in summaries for run in s.runs]
    headline = dict((key, title) for key, title, _ in METRICS)[headline_metric(runs)]
    lines = [
        f"Mean ± sample standard deviation over the n runs (seeds) of each variant, ranked by "
        f'mean {headline}. "{WITHIN_NOISE}": the gap to the best mean is at most '
        "one standard deviation (the larger of the two), so these runs do not separate them.",
        "",
        *signature_lines(runs),
        "",
        *summary_table(summaries),
    ]
    if all(s.n == 1 for s in summaries):
        lines += ["", "One run per variant: no seed noise is known. Add e.g. `seed=1,2,3`."]
    return lines


def summary_table(summaries: Sequence[VariantSummary], keys: Sequence[str] = ()) -> list[str]:
    """One row per variant: mean ± std of the METRICS named by `keys` (default: all), n, note."""
    columns = [m for m in METRICS if not keys or m[0] in keys]
    header = ["variant", "n", *(title for _, title, _ in columns), "note"]
    rows = [
        [s.variant, str(s.n), *(_with_spread(fmt, s.mean[k], s.std[k]) for k, _, fmt in columns)]
        + [s.note]
        for s in summaries
    ]
    return _table(header, rows)


def runs_table(runs: Sequence[Run], sweep_dir: Path) -> list[str]:
    header = ["variant", "seed", "run", *(title for _, title, _ in METRICS)]
    return _table(header, [_run_cells(run, sweep_dir) for run in runs])


def write_report(
    sweep_dir: Path, sentences: Sequence[int] | None = None, alignment: str | None = None
) -> list[str]:
    """Write every report file into `sweep_dir`; return the markdown lines."""
    sweep_dir = Path(sweep_dir)
    summaries = summarise(load_runs(sweep_dir))
    lines = markdown_report(summaries, sweep_dir)
    write_lines(sweep_dir / "comparison.md", lines)
    _write_csv(sweep_dir / "comparison.csv", _summary_records(summaries))
    runs = [run for s in summaries for run in s.runs]
    _write_csv(sweep_dir / "runs.csv", [_run_record(run, sweep_dir) for run in runs])
    plots.save(plots.learning_curves(curves(summaries)), sweep_dir / "comparison.png")
    rows = attention_panels(summaries, sentences, alignment)
    if rows:
        panels = [panel for row in rows for panel in row]
        grid = plots.attention_grid(panels, columns=len(rows[0]))
        plots.save(grid, sweep_dir / "attention_grid.png")
    return lines


def bleu_signatures(runs: Sequence[Run]) -> dict[str, list[str]]:
    """Each test search (`greedy`, `beam5`) and the distinct sacreBLEU signatures the runs
    recorded for its BLEU."""
    found: dict[str, list[str]] = {}
    for run in runs:
        for search, result in run.metrics["test"].items():
            signature, known = result.get("bleu_signature"), found.setdefault(search, [])
            if signature and signature not in known:
                known.append(signature)
    return found


def signature_lines(runs: Sequence[Run]) -> list[str]:
    """The sacreBLEU signature of the test BLEU, stated once when every run shares it."""
    found = bleu_signatures(runs)
    distinct = sorted({signature for signatures in found.values() for signature in signatures})
    searches = ", ".join(sorted(found))
    if not distinct:
        return [f"Test BLEU ({searches}): the runs recorded no sacreBLEU signature."]
    if len(distinct) == 1:
        return [f"Test BLEU ({searches}) is sacreBLEU with the signature `{distinct[0]}`."]
    return [
        "The runs' test BLEU have different sacreBLEU signatures, so not all compare:",
        *(f"- {search}: " + ", ".join(f"`{s}`" for s in found[search]) for search in sorted(found)),
    ]


def attention_panels(
    summaries: Sequence[VariantSummary],
    sentences: Sequence[int] | None = None,
    alignment: str | None = None,
) -> list[list[tuple[str, dict]]]:
    """One row per variant that saved examples (from its first run by seed that did): the
    same `sentences` of each one's attention.json (default: the first three every variant
    saved), or with `alignment`, of its `seq2seq.align` examples.json, gold links included."""
    name = ATTENTION_FILE if alignment is None else f"eval/{ALIGN_PREFIX}{alignment}/examples.json"
    saved = []
    for summary in summaries:
        for run in sorted(summary.runs, key=lambda r: r.seed):
            if (run.path / name).exists():
                examples = json.loads((run.path / name).read_text())["examples"]
                saved.append((f"{summary.variant} (seed {run.seed})", run.path / name, examples))
                break
    if not saved:
        return []
    if sentences is None:
        sentences = range(min(3, *(len(examples) for _, _, examples in saved)))
    return [_panel_row(title, path, examples, sentences) for title, path, examples in saved]


def _panel_row(
    title: str, path: Path, examples: list[dict], sentences: Sequence[int]
) -> list[tuple[str, dict]]:
    for sentence in sentences:
        if not 0 <= sentence < len(examples):
            raise ValueError(
                f"--sentences {sentence} is out of range: {path} holds {len(examples)} "
                "examples (logger.examples in the run's config, examples= of seq2seq.align)"
            )
    return [(f"{title}, sentence {i}", examples[i]) for i in sentences]


def curves(summaries: Sequence[VariantSummary]) -> dict[str, list[list[plots.CurvePoint]]]:
    """Per variant, per run: its validations as (update, training minutes, BLEU)."""
    return {
        s.variant: [
            [(v["update"], v["time"] / 60, v["bleu"]) for v in run.metrics["validations"]]
            for run in s.runs
        ]
        for s in summaries
    }


def _run_cells(run: Run, sweep_dir: Path) -> list[str]:
    row = run.row()
    values = [_format(fmt, row[key]) for key, _, fmt in METRICS]
    return [run.name, str(run.seed), _relative(run.path, sweep_dir), *values]


def _summary_records(summaries: Sequence[VariantSummary]) -> list[dict[str, Any]]:
    records = []
    for s in summaries:
        record: dict[str, Any] = {"variant": s.variant, "n": s.n}
        for key, _, _ in METRICS:
            record[f"{key}_mean"], record[f"{key}_std"] = s.mean[key], s.std[key]
        records.append({**record, "note": s.note})
    return records


def _run_record(run: Run, sweep_dir: Path) -> dict[str, Any]:
    return {
        "variant": run.name,
        "seed": run.seed,
        "run": _relative(run.path, sweep_dir),
        **run.row(),
    }


def _write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _with_spread(fmt: str, mean: float, std: float) -> str:
    if math.isnan(std) or std == 0:  # one run, or a constant such as the parameter count
        return _format(fmt, mean)
    return f"{_format(fmt, mean)} ± {_format(fmt, std)}"


def _format(fmt: str, value: float) -> str:
    return "–" if math.isnan(value) else fmt.format(value)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def _std(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def _beam_result(tests: dict[str, dict]) -> dict:
    """The run's beam-search test result (key `beam<K>`), or {} if it ran greedy only."""
    return next((result for name, result in tests.items() if name.startswith("beam")), {})


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root else "."


def _indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices such as 0,1,2, got {text!r}") from None


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path, help="directory holding the runs' metrics.json")
    parser.add_argument(
        "--sentences",
        type=_indices,
        default=None,
        help="which saved validation sentences the attention grid shows, e.g. 0,1,2 "
        "(default: the first three every variant saved)",
    )
    parser.add_argument(
        "--alignment",
        default=None,
        help="draw the grid from this gold set's pairs (e.g. rwth_de_en), with gold links, "
        "for runs that `python -m seq2seq.align` scored on it",
    )
    _page_arguments(parser)
    return parser, parser.parse_args(argv)


# the results page's options: --results and what it adds (each needs --results)
PAGE_OPTIONS = {
    "results": "also write the results page there (e.g. docs/results.md)",
    "ablations": "with --results: an ablation sweep's directory to add",
    "curve": "with --results: the budget's learning-curve sweep to add",
    "readme": "with --results: also rewrite the study summary between this file's markers "
    "(README.md)",
    "scores": "with --results: the table of scripts/attention_scores.py over the runs, for the "
    "page's section on attention scores",
}


def _page_arguments(parser: argparse.ArgumentParser) -> None:
    for name, help_text in PAGE_OPTIONS.items():
        parser.add_argument(f"--{name}", type=Path, help=help_text)


def main(argv: Sequence[str] | None = None) -> None:
    parser, args = _parse(argv)
    if any(getattr(args, name) for name in PAGE_OPTIONS) and not args.results:
        added = ", ".join(f"--{name}" for name in PAGE_OPTIONS if name != "results")
        parser.exit(2, f"error: {added} come with the results page: add --results\n")
    try:
        if args.results:
            from seq2seq.results import write_results_page  # it imports this module

            grid = {"sentences": args.sentences, "alignment": args.alignment}
            sweeps = {
                "ablation_dir": args.ablations,
                "curve_dir": args.curve,
                "readme": args.readme,
                "scores": args.scores,
            }
            write_results_page(args.sweep_dir, args.results, **sweeps, **grid)
            lines = (args.sweep_dir / "comparison.md").read_text().splitlines()
        else:
            lines = write_report(args.sweep_dir, args.sentences, args.alignment)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print("\n".join(lines))
    print(f"\nwrote comparison.md, comparison.csv, runs.csv and plots into {args.sweep_dir}")
    if args.results:
        print(f"wrote {args.results} (figures in {args.results.parent / 'img' / 'results'})")
    if args.readme:
        print(f"wrote the study summary into {args.readme}")


if __name__ == "__main__":
    main(sys.argv[1:])
