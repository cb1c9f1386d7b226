"""The study's results page (`python -m seq2seq.compare <dir> --results PAGE`), the attention
grid of the same sentences for every variant, the sacreBLEU signature, ablation sweeps."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from matplotlib.image import imread
from omegaconf import OmegaConf
from support import REPO
from test_compare import write_run

from seq2seq import compare, results

SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
MACHINE = {"cpu": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu", "python": "3.11.7"}
# test BLEU with beam search of each variant's seeds 1 and 2
BEAM_BLEU = {"bahdanau": [30.25, 31.75], "luong_dot": [28.5, 30.0], "transformer": [35.0, 36.5]}


def study_run(root: Path, variant: str, seed: int, beam_bleu: float, end: str) -> dict:
    """A run as training records it, with config, signatures and machine."""
    metrics = write_run(root, variant, seed, beam_bleu, greedy_bleu=beam_bleu - 1.5)
    metrics["parameters"] = 1000 * len(variant)  # constant per variant
    metrics["config"] = {
        "data": {"name": "multi30k", "src_lang": "de", "tgt_lang": "en"},
        "trainer": {"max_updates": 4000},
    }
    for result in metrics["test"].values():
        result["bleu_signature"] = SIGNATURE
    metrics["machine"] = {**MACHINE, "date": end}
    (root / f"{variant}_seed{seed}" / "metrics.json").write_text(json.dumps(metrics))
    return metrics


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Three variants × two seeds, finished an hour apart, with Hydra's multirun.yaml."""
    root = tmp_path / "study"
    hour = 10
    for variant, bleus in BEAM_BLEU.items():
        for seed, bleu in enumerate(bleus, start=1):
            study_run(root, variant, seed, bleu, f"2026-12-01T{hour:02d}:00:00+00:00")
            hour += 1
    overrides = {
        "hydra": ["hydra.sweep.dir=runs/study", "hydra.mode=MULTIRUN"],
        "task": ["experiment=attention_study", "trainer.resume=auto"],
    }
    OmegaConf.save({"hydra": {"overrides": overrides}}, root / "multirun.yaml")
    return root


def table_rows(lines: list[str], first_cell: str) -> dict[str, dict[str, str]]:
    """The markdown table whose header starts with `first_cell`, as {row name: {title: cell}}."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_every_number_of_the_page_comes_from_the_runs(study: Path, tmp_path: Path):
    page = tmp_path / "docs" / "results.md"
    compare.main([str(study), "--results", str(page)])
    lines = page.read_text().splitlines()
    summary = table_rows(lines, "variant")
    assert list(summary) == ["transformer", "bahdanau", "luong_dot"]  # best mean first
    for variant in BEAM_BLEU:
        runs = [
            json.loads((study / f"{variant}_seed{s}" / "metrics.json").read_text()) for s in (1, 2)
        ]
        cells = summary[variant]
        assert cells["n"] == "2" and cells["parameters"] == f"{runs[0]['parameters']:,}"
        beam = [m["test"]["beam4"]["bleu"] for m in runs]
        assert (
            cells["test BLEU beam"]
            == f"{statistics.fmean(beam):.2f} ± {statistics.stdev(beam):.2f}"
        )
        greedy = [m["test"]["greedy"]["bleu"] for m in runs]
        assert cells["test BLEU greedy"].startswith(f"{statistics.fmean(greedy):.2f} ± ")
        best_val = [max(v["bleu"] for v in m["validations"]) for m in runs]
        spread = f"{statistics.fmean(best_val):.2f} ± {statistics.stdev(best_val):.2f}"
        assert cells["best val BLEU"] == spread
        tokens = [m["train"]["tgt_tokens_per_second"] for m in runs]
        assert cells["tgt tok/s"].startswith(f"{statistics.fmean(tokens):,.0f} ± ")
        assert cells["test chrF beam"] == f"{runs[0]['test']['beam4']['chrf']:.2f}"
        assert cells["beam sent/s"] == f"{runs[0]['test']['beam4']['sentences_per_second']:.1f}"
        assert cells["AER"] == "–"  # never aligned
    # transformer 35.75 ± 1.06, bahdanau 4.75 below: apart, as the table says
    assert [summary[v]["note"] for v in summary] == ["best", "", ""]
    runs_table = lines[lines.index("<details><summary>Every run</summary>") :]
    for variant, bleus in BEAM_BLEU.items():
        for seed, bleu in enumerate(bleus, start=1):
            row = f"| {variant} | {seed} | {variant}_seed{seed} | "
            (line,) = [line for line in runs_table if line.startswith(row)]
            assert f" | {bleu - 1.5:.2f} | {bleu:.2f} | " in line  # greedy, beam


def test_the_page_says_what_ran_on_what_and_when_from_the_records(study: Path, tmp_path: Path):
    page = tmp_path / "results.md"
    text = "\n".join(results.write_results_page(study, page))
    assert text == page.read_text().rstrip("\n")
    command = "python -m seq2seq.train -m hydra.sweep.dir=runs/study experiment=attention_study"
    assert f"**Command**: `{command} trainer.resume=auto`" in text
    assert "multi30k de→en; **budget**: 4000 updates per run; **seeds**: 1, 2; 6 runs" in text
    assert "**Machine**: AMD EPYC (2 CPUs), torch 2.13.0+cpu" in text
    # six runs of 2 to 4 minutes each (write_run: 120 s × seed), finished 10:00 to 15:00
    assert "**Training time**: 18.0 min in all" in text
    assert "from 2026-12-01T10:00:00+00:00 to 2026-12-01T15:00:00+00:00" in text
    assert "wall time of the sweep ≈ 5.0 h" in text  # 10:00 less 2 minutes, to 15:00
    record = OmegaConf.load(study / "multirun.yaml")
    record.hydra.launcher = {"n_jobs": 2}  # as Hydra's joblib launcher records it
    OmegaConf.save(record, study / "multirun.yaml")
    text = "\n".join(results.write_results_page(study, page))
    assert (
        "**Training time**: 18.0 min in all (validation included); 2 runs at a time: ≈ 9.0 min"
        in text
    )
    assert text.count(SIGNATURE) == 1  # stated once, for greedy and beam alike
    assert f"Test BLEU (beam4, greedy) is sacreBLEU with the signature `{SIGNATURE}`" in text
    curves = tmp_path / "img" / "results" / "study_curves.png"
    assert curves.read_bytes() == (study / "comparison.png").read_bytes()
    assert "![validation BLEU against updates and time](img/results/study_curves.png)" in text


def write_alignment(run_dir: Path, aer: float, eflomal: dict | str) -> None:
    """What `python -m seq2seq.align` records in <run>/eval/align.rwth_de_en/."""
    out = run_dir / "eval" / "align.rwth_de_en"
    out.mkdir(parents=True)
    record = {
        "alignment": "rwth_de_en",
        "pairs": 508,
        "model": {"aer": aer},
        "references": {"diagonal": {"aer": 0.746}, "eflomal": eflomal},
    }
    (out / "metrics.json").write_text(json.dumps(record))


def test_the_page_shows_aer_with_the_reference_aligners_of_the_same_pairs(
    study: Path, tmp_path: Path
):
    write_alignment(study / "bahdanau_seed1", 0.5, {"aer": 0.25})
    write_alignment(study / "bahdanau_seed2", 0.7, "skipped: eflomal=false")
    lines = results.write_results_page(study, tmp_path / "results.md")
    assert table_rows(lines, "variant")["bahdanau"]["AER"].startswith("0.600")
    (note,) = [line for line in lines if line.startswith("- **AER**")]
    assert "(2 of 6 runs aligned)" in note and "rwth_de_en (508 gold sentence pairs)" in note
    assert "diagonal 0.746, eflomal 0.250" in note


def test_regenerating_keeps_the_discussion_and_takes_new_numbers(study: Path, tmp_path: Path):
    page = tmp_path / "results.md"
    results.write_results_page(study, page)
    assert results.NO_DISCUSSION in page.read_text()
    discussion = ["Luong dot trails Bahdanau by 1.75 BLEU (table above).", "", "| a | b |"]
    text = page.read_text().replace(results.NO_DISCUSSION, "\n".join(discussion))
    page.write_text(text.replace("## The study", "## The study (edited by hand, lost)"))
    changed = json.loads((study / "luong_dot_seed1" / "metrics.json").read_text())
    changed["test"]["beam4"]["bleu"] = 40.0
    (study / "luong_dot_seed1" / "metrics.json").write_text(json.dumps(changed))
    lines = results.write_results_page(study, page)
    begin = lines.index(results.DISCUSSION_BEGIN)
    assert lines[begin + 1 : lines.index(results.DISCUSSION_END)] == discussion
    assert "edited by hand" not in page.read_text() and results.NO_DISCUSSION not in lines
    assert table_rows(lines, "variant")["luong_dot"]["test BLEU beam"] == "35.00 ± 7.07"


def test_a_discussion_without_its_end_marker_is_refused(study: Path, tmp_path: Path, capsys):
    page = tmp_path / "results.md"
    page.write_text(f"# old\n{results.DISCUSSION_BEGIN}\nmy notes\n")
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(study), "--results", str(page)])
    assert exit_info.value.code == 2
    assert f"{page}: the discussion starts with" in capsys.readouterr().err
    assert page.read_text() == f"# old\n{results.DISCUSSION_BEGIN}\nmy notes\n"  # untouched


def test_the_score_table_gets_its_section_before_the_discussion(study: Path, tmp_path: Path):
    table = ["| run | top-2 score gap |", "| --- | ---: |", "| luong_dot_seed1 | 13.72 |"]
    scores = tmp_path / "results_scores.md"
    scores.write_text("\n".join(table) + "\n")
    page = tmp_path / "results.md"
    compare.main([str(study), "--results", str(page), "--scores", str(scores)])
    lines = page.read_text().splitlines()
    section = lines.index("## Attention scores before normalisation")
    assert lines[section + 2] == results.SCORES_INTRO
    assert lines[section + 4 : section + 7] == table
    assert section < lines.index("## Discussion")
    assert f"--results {page} --scores {scores}`" in lines[2]  # the command that wrote it


def test_a_missing_score_table_is_refused_before_anything_is_written(
    study: Path, tmp_path: Path, capsys
):
    page = tmp_path / "results.md"
    with pytest.raises(SystemExit) as stop:
        compare.main([str(study), "--results", str(page), "--scores", str(tmp_path / "none.md")])
    assert stop.value.code == 2 and "--scores" in capsys.readouterr().err
    assert not page.exists()
    with pytest.raises(SystemExit):  # the table belongs to a page
        compare.main([str(study), "--scores", str(tmp_path / "none.md")])


def test_different_signatures_are_listed_not_hidden(study: Path):
    metrics = json.loads((study / "bahdanau_seed1" / "metrics.json").read_text())
    metrics["test"]["beam4"]["bleu_signature"] = SIGNATURE.replace("13a", "intl")
    (study / "bahdanau_seed1" / "metrics.json").write_text(json.dumps(metrics))
    lines = compare.signature_lines(compare.load_runs(study))
    assert lines[0].startswith("The runs' test BLEU have different sacreBLEU signatures")
    # in the order of the runs: bahdanau_seed1 comes first
    assert lines[1] == f"- beam4: `{SIGNATURE.replace('13a', 'intl')}`, `{SIGNATURE}`"
    assert lines[2] == f"- greedy: `{SIGNATURE}`"


def write_examples(run_dir: Path, count: int) -> list[dict]:
    """attention.json with `count` examples, example i of i + 2 source and i + 1 target tokens."""
    examples = []
    for i in range(count):
        source, target = [f"s{j}" for j in range(i + 2)], [f"t{j}" for j in range(i + 1)]
        weights = [[1.0 / len(source)] * len(source) for _ in target]
        examples.append({"source": source, "target": target, "weights": weights})
    (run_dir / "attention.json").write_text(json.dumps({"examples": examples}))
    return examples


def test_the_grid_shows_the_same_sentences_for_every_variant(study: Path):
    saved = {
        v: write_examples(study / f"{v}_seed2", 4 if v != "luong_dot" else 3) for v in BEAM_BLEU
    }
    summaries = compare.summarise(compare.load_runs(study))
    rows = compare.attention_panels(summaries, [2, 0])
    assert [[title for title, _ in row] for row in rows] == [
        [f"{s.variant} (seed 2), sentence 2", f"{s.variant} (seed 2), sentence 0"]
        for s in summaries
    ]
    for summary, row in zip(summaries, rows):
        assert [example for _, example in row] == [saved[summary.variant][i] for i in (2, 0)]
    default = compare.attention_panels(summaries)  # the first three every variant saved
    assert [len(row) for row in default] == [3, 3, 3]
    with pytest.raises(ValueError, match=r"--sentences 3 is out of range: .*luong_dot_seed2"):
        compare.attention_panels(summaries, [0, 3])
    compare.write_report(study, sentences=[0, 2])
    grid = imread(study / "attention_grid.png")
    assert grid.shape[:2] == (3 * 370, 2 * 350)  # 3 variants down, 2 sentences across (inches
    # per panel: 2.5 + 1.2 high and 2.5 + 1.0 wide at 100 dpi, every sentence being short)


def test_ablation_runs_are_grouped_by_their_directory_and_show_the_average(tmp_path: Path):
    for name, bleu in (("transformer_baseline", 35.0), ("transformer_dropout0.3", 36.0)):
        write_run(tmp_path, "transformer", 1, bleu)
        (tmp_path / "transformer_seed1").rename(tmp_path / f"{name}_seed1")
    averaged = tmp_path / "transformer_baseline_seed1" / "eval" / "test.beam5.average_last5"
    averaged.mkdir(parents=True)
    (averaged / "metrics.json").write_text(json.dumps({"split": "test", "bleu": 37.5}))
    summaries = compare.summarise(compare.load_runs(tmp_path))
    assert [s.variant for s in summaries] == ["transformer_dropout0.3", "transformer_baseline"]
    assert summaries[1].mean["averaged_test_bleu_beam"] == 37.5
    lines = compare.markdown_report(summaries, tmp_path)
    assert (
        table_rows(lines, "variant")["transformer_baseline"]["test BLEU beam, last-N average"]
        == "37.50"
    )


def test_a_budget_no_curve_flattened_by_says_what_set_it(study: Path, tmp_path: Path):
    curve = tmp_path / "study_curve"
    metrics = study_run(curve, "transformer", 1, 24.0, "2026-12-01T09:00:00+00:00")
    for k, validation in enumerate(metrics["validations"]):
        validation["bleu"] = 10.0 + 5 * k  # still climbing at its last validation
    (curve / "transformer_seed1" / "metrics.json").write_text(json.dumps(metrics))
    page = tmp_path / "results.md"
    compare.main([str(study), "--results", str(page), "--curve", str(curve)])
    text = page.read_text()
    assert "no budget: transformer seed 1 still climbing" in text
    assert (
        "The study trained 4000 updates per run, which no curve above had flattened by "
        "(`configs/experiment/attention_study.yaml` says how the study's time limit set it)"
    ) in text


def test_the_page_adds_the_budget_curves_and_the_ablations(study: Path, tmp_path: Path):
    curve, ablations = tmp_path / "study_curve", tmp_path / "ablations"
    for variant, greedy in (("bahdanau", 20.0), ("transformer", 24.0)):
        study_run(curve, variant, 1, greedy + 1.5, "2026-12-01T09:00:00+00:00")
        write_examples(curve / f"{variant}_seed1", 3)
    for name, bleu in (("transformer_baseline", 36.0), ("transformer_dropout0.3", 37.0)):
        write_run(ablations, "transformer", 1, bleu)
        (ablations / "transformer_seed1").rename(ablations / f"{name}_seed1")
    page = tmp_path / "results.md"
    arguments = ["--results", str(page), "--ablations", str(ablations), "--curve", str(curve)]
    compare.main([str(study), *arguments])
    lines = page.read_text().splitlines()
    sections = [line for line in lines if line.startswith("## ")]
    assert sections == ["## The budget", "## The study", "## Ablations", "## Discussion"]
    assert f"`python -m seq2seq.compare {study} {' '.join(arguments)}`" in lines[2]
    # write_run's curves: BLEU 18 at update 5 and 19 at 10, within 1 of it: flat at 5
    assert "| transformer seed 1 | 10 | 23.00 (10) | 5 | 22.00 | 12.000 |" in lines
    assert "study budget: study_updates: 5  (configs/experiment/attention_study.yaml)" in lines
    # what the curves gain from the study's budget (its runs' trainer.max_updates) to twice it
    assert any(line.startswith("The study trained 4000 updates per run;") for line in lines)
    assert "| transformer seed 1 | 23.00 | 23.00 (to 10) | 0.00 |" in lines
    # and where each curve's best checkpoint got on the test set (study_run: beam 25.5)
    assert "| transformer seed 1 | 10 | 24.00 | 25.50 |" in lines
    ablation_rows = table_rows(lines[lines.index("## Ablations") :], "variant")
    assert list(ablation_rows) == ["transformer_dropout0.3", "transformer_baseline"]
    for kind in ("budget_curves", "study_curves", "ablations_curves"):  # no attention.json
        assert f"img/results/{kind}.png)" in page.read_text()
    assert (curve / "attention_grid.png").exists()  # the budget's runs have a grid, but
    assert not (tmp_path / "img" / "results" / "budget_attention.png").exists()  # not shown
    with pytest.raises(SystemExit):  # the extra sweeps belong to a page
        compare.main([str(study), "--curve", str(curve)])


def test_the_readme_summary_replaces_only_its_block_and_shows_the_headline_columns(
    study: Path, tmp_path: Path
):
    readme = tmp_path / "README.md"
    before, after = ["# seq2seq", "", "intro"], ["", "## Attention as alignment"]
    readme.write_text(
        "\n".join([*before, results.README_BEGIN, "stale", results.README_END, *after])
    )
    page = tmp_path / "docs" / "results.md"
    compare.main([str(study), "--results", str(page), "--readme", str(readme)])
    lines = readme.read_text().splitlines()
    begin, end = lines.index(results.README_BEGIN), lines.index(results.README_END)
    assert lines[:begin] == before and lines[end + 1 :] == after and "stale" not in lines
    block = lines[begin + 1 : end]
    assert block[0].startswith("3 variants, seeds 1, 2 (6 runs), 4000 updates each, on AMD EPYC")
    assert "[docs/results.md](docs/results.md)" in block[0]
    rows = table_rows(block, "variant")
    assert list(rows) == ["transformer", "bahdanau", "luong_dot"]  # best mean beam BLEU first
    assert rows["bahdanau"]["test BLEU beam"] == "31.00 ± 1.06"  # the seeds 30.25 and 31.75
    assert list(rows["bahdanau"]) == [
        "variant", "n", "tgt tok/s", "best val BLEU", "test BLEU greedy", "test BLEU beam",
        "beam sent/s", "AER", "note",
    ]  # fmt: skip
    assert "![validation BLEU against updates and time](docs/img/results/study_curves.png)" in block
    compare.main([str(study), "--results", str(page), "--readme", str(readme)])
    assert readme.read_text().splitlines() == lines  # rewriting gives the same file


def test_the_project_readme_has_the_study_summary_markers_make_study_writes_between():
    lines, begin, end = results.readme_block(REPO / "README.md")
    assert lines[begin - 1] == results.README_BEGIN and begin <= end


def test_a_readme_without_the_markers_is_refused_before_anything_is_written(
    study: Path, tmp_path: Path, capsys
):
    readme, page = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text("# seq2seq\n")
    with pytest.raises(SystemExit) as stop:
        compare.main([str(study), "--results", str(page), "--readme", str(readme)])
    assert stop.value.code == 2 and not page.exists()
    assert f"{readme}: no study summary to replace" in capsys.readouterr().err
    assert readme.read_text() == "# seq2seq\n"
