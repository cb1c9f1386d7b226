"""The attention comparison: its sweep config, and the report over hand-written and real runs."""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread
from omegaconf import OmegaConf
from support import compose_with_hydra, sweep_points
from training.conftest import REPO, TINY, compose_config

from seq2seq import compare, variants
from seq2seq.pipeline import build_model
from seq2seq.train import train

ATTENTIONS = variants.attention_names()
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("compare_attention*"))


# ----------------------------------------------------------------------------- sweep config


def sweep_variants(experiment: str) -> list[str]:
    return [job[0].removeprefix("variant=") for job in sweep_points(experiment)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_sweep_runs_every_attention_file_and_the_transformer(experiment):
    assert sweep_variants(experiment) == [*ATTENTIONS, "transformer"]


@pytest.mark.parametrize("variant", variants.names())
def test_each_variant_composes_its_model_under_one_budget(variant):
    configs = {
        name: compose_with_hydra(f"experiment={name}", f"variant={variant}") for name in EXPERIMENTS
    }
    alone = compose_config("train", f"+variant={variant}")  # outside any experiment
    for cfg in (alone, *configs.values()):
        if variant == "transformer":
            assert cfg.model._target_.endswith("Transformer")
        else:
            assert cfg.model._target_.endswith("RNNSeq2Seq")
            expected = OmegaConf.load(REPO / "configs" / "model" / "attention" / f"{variant}.yaml")
            assert cfg.model.attention._target_ == expected.attention._target_
    for cfg in configs.values():
        assert cfg.trainer.max_updates is not None and cfg.trainer.patience is None
        assert OmegaConf.select(cfg, "hydra.sweep.subdir") == f"{variant}_seed{cfg.seed}"
    full, smoke = configs["compare_attention"], configs["compare_attention_smoke"]
    assert smoke.data.name == "toy_copy"
    # the smoke shrinks both model families; the full comparison keeps their default sizes
    assert full.model == alone.model
    vocab = type("Vocab", (), {"src_vocab_size": 24, "tgt_vocab_size": 24, "pad_id": 0})
    assert sum(p.numel() for p in build_model(smoke.model, vocab).parameters()) < 100_000
    assert sum(p.numel() for p in build_model(full.model, vocab).parameters()) > 500_000


# ----------------------------------------------------------------------------- the report


def write_run(
    root: Path, variant: str, seed: int, beam_bleu: float, greedy_bleu: float = 10.0
) -> dict:
    """A run directory with a metrics.json shaped like seq2seq.reporting writes it."""
    metrics = {
        "variant": variant,
        "seed": seed,
        "parameters": 1000,
        "train": {"updates": 10, "seconds": 120.0 * seed, "tgt_tokens_per_second": 50.0 * seed},
        "validations": [
            {"update": 5, "time": 60.0, "bleu": greedy_bleu - 2},
            {"update": 10, "time": 120.0, "bleu": greedy_bleu - 1},
        ],
        "test": {
            "greedy": {"bleu": greedy_bleu, "chrf": 40.0, "sentences_per_second": 100.0},
            "beam4": {"bleu": beam_bleu, "chrf": 41.0, "sentences_per_second": 20.0},
        },
        "config": {},
    }
    run_dir = root / f"{variant}_seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def write_sweep(root: Path, beam_bleus: dict[str, list[float]]) -> None:
    for variant, bleus in beam_bleus.items():
        for seed, bleu in enumerate(bleus, start=1):
            write_run(root, variant, seed, bleu)


def test_seeds_are_grouped_into_mean_std_and_n(tmp_path):
    write_sweep(tmp_path, {"luong_dot": [24.0, 26.0, 28.0], "bahdanau": [25.5]})
    summaries = {s.variant: s for s in compare.summarise(compare.load_runs(tmp_path))}
    dot = summaries["luong_dot"]
    assert dot.n == 3 and [run.seed for run in dot.runs] == [1, 2, 3]
    assert dot.mean["test_bleu_beam"] == pytest.approx(26.0)
    assert dot.std["test_bleu_beam"] == pytest.approx(2.0)  # sample deviation (n - 1)
    assert dot.mean["train_minutes"] == pytest.approx(4.0)  # 2, 4 and 6 minutes
    assert dot.std["tgt_tokens_per_second"] == pytest.approx(statistics.stdev([50, 100, 150]))
    assert dot.mean["best_validation_bleu"] == pytest.approx(9.0)
    assert summaries["bahdanau"].n == 1
    assert math.isnan(summaries["bahdanau"].std["test_bleu_beam"])  # one run: no spread


def test_variants_within_one_std_of_the_best_are_flagged(tmp_path):
    write_sweep(
        tmp_path,
        {
            "transformer": [30.0, 26.0],  # mean 28, std 2.83: the best
            "luong_dot": [24.0, 26.0, 28.0],  # mean 26: 2 below, within 2.83
            "bahdanau": [25.5],  # one run: 2.5 below, within the best's 2.83
            "luong_concat": [20.0],  # 8 below
            "luong_general": [10.0, 12.0],  # 17 below
        },
    )
    summaries = compare.summarise(compare.load_runs(tmp_path))
    ranked = [(s.variant, s.note) for s in summaries]
    assert ranked == [
        ("transformer", "best"),
        ("luong_dot", compare.WITHIN_NOISE),
        ("bahdanau", compare.WITHIN_NOISE),
        ("luong_concat", ""),
        ("luong_general", ""),
    ]
    lines = compare.markdown_report(summaries, tmp_path)
    dot_row = next(line for line in lines if line.startswith("| luong_dot | 3 |"))
    assert "26.00 ± 2.00" in dot_row and compare.WITHIN_NOISE in dot_row


def test_noise_uses_the_larger_of_the_two_deviations(tmp_path):
    """The documented rule (docs/compare.md): within noise when the gap to the best is at most
    the larger of the best's and the variant's deviations. The numbers separate it from the
    best's deviation alone, the variant's alone and the smaller of the two."""
    write_sweep(
        tmp_path,
        {
            "best": [28.5, 27.5],  # mean 28, std 0.71
            "wide": [23.0, 26.0, 29.0],  # 2 below, std 3: only the larger (its own) covers it
            "tight": [27.3, 27.5],  # 0.6 below, std 0.14: only the best's 0.71 covers it
            "single": [27.5],  # 0.5 below, no deviation of its own: the best's covers it
            "apart": [24.0, 25.0, 26.0],  # 3 below, std 1: outside both deviations
        },
    )
    notes = {s.variant: s.note for s in compare.summarise(compare.load_runs(tmp_path))}
    assert notes == {
        "best": "best",
        "wide": compare.WITHIN_NOISE,
        "tight": compare.WITHIN_NOISE,
        "single": compare.WITHIN_NOISE,
        "apart": "",
    }


def test_without_beam_everywhere_the_ranking_uses_greedy_bleu(tmp_path):
    write_run(tmp_path, "a", 1, beam_bleu=50.0, greedy_bleu=10.0)
    only_greedy = write_run(tmp_path, "b", 1, beam_bleu=0.0, greedy_bleu=20.0)
    del only_greedy["test"]["beam4"]
    (tmp_path / "b_seed1" / "metrics.json").write_text(json.dumps(only_greedy))
    runs = compare.load_runs(tmp_path)
    assert compare.headline_metric(runs) == "test_bleu_greedy"
    assert [s.variant for s in compare.summarise(runs)] == ["b", "a"]


def test_a_directory_without_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text('{"split": "test", "bleu": 1.0}')  # evaluate's
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"no training run's metrics.json under {tmp_path}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two tiny real runs (seeds 1 and 2) side by side, as a sweep leaves them."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in (1, 2):
        overrides = (f"seed={seed}", "trainer.max_updates=4", "trainer.validate_every=2")
        cfg = compose_config("train", *TINY, f"cache_dir={root / 'cache'}", *overrides)
        train(cfg, root / f"transformer_seed{seed}")
    return root


def test_report_of_real_runs_has_their_numbers(sweep, capsys):
    compare.main([str(sweep)])
    printed = capsys.readouterr().out
    with open(sweep / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == ["transformer_seed1", "transformer_seed2"]
    for row in rows:
        metrics = json.loads((sweep / row["run"] / "metrics.json").read_text())
        assert int(row["seed"]) == metrics["seed"]
        assert float(row["test_bleu_greedy"]) == pytest.approx(metrics["test"]["greedy"]["bleu"])
        assert float(row["test_chrf_greedy"]) == pytest.approx(metrics["test"]["greedy"]["chrf"])
        assert float(row["train_minutes"]) == pytest.approx(metrics["train"]["seconds"] / 60)
        assert float(row["parameters"]) == metrics["parameters"]
        assert row["test_bleu_beam"] == "nan"  # TINY decodes greedily only
        # what the results page says the study ran on, and when it ended
        assert metrics["machine"]["cpu_count"] == os.cpu_count()
        ended = datetime.datetime.fromisoformat(metrics["machine"]["date"])
        assert abs(ended - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 3600
        assert f"| {row['run']} |" in printed
    with open(sweep / "comparison.csv") as f:
        (summary,) = list(csv.DictReader(f))
    assert int(summary["n"]) == 2
    mean = statistics.fmean(float(row["tgt_tokens_per_second"]) for row in rows)
    assert float(summary["tgt_tokens_per_second_mean"]) == pytest.approx(mean)
    check_figures(sweep)
    assert (sweep / "comparison.md").read_text().strip() == printed.split("\n\nwrote")[0].strip()


def check_figures(sweep: Path) -> None:
    """Decode the report's PNGs: their sizes follow from the figures' inches at 100 dpi, the
    BLEU curves are drawn in the first variant's colour, the heatmap fills its panel."""
    curves = imread(sweep / "comparison.png")[..., :3]  # (H, W, RGB) floats in [0, 1]
    assert curves.shape == (450, 1200, 3)  # 12 x 4.5 inches: against updates, against time
    blue = np.array(colormaps["tab10"](0)[:3])
    in_blue = np.abs(curves - blue).max(axis=-1) < 0.02
    for half in (in_blue[:, :600], in_blue[:, 600:]):  # both panels draw the curves
        assert half.sum() > 100, "no curve in its colour"

    grid = imread(sweep / "attention_grid.png")[..., :3]
    examples = json.loads((sweep / "transformer_seed1" / "attention.json").read_text())["examples"][
        :3
    ]  # by default the first three sentences, one row per variant (here one)
    assert len(examples) == 3
    side = lambda tokens: min(max(0.28 * tokens, 2.5), 12.0)  # noqa: E731 - plots._side
    height = round(100 * (max(side(len(e["target"])) for e in examples) + 1.2))
    width = round(100 * (max(side(len(e["source"])) for e in examples) + 1.0))
    assert grid.shape[:2] == (height, 3 * width)
    # the centre of each panel lies inside its axes, which the heatmap fills: weights > 0 are
    # shades of grey there (light ones for long sources), where a figure without it is white
    for column in range(3):
        panel = grid[:, column * width : (column + 1) * width]
        centre = panel[2 * height // 5 : 3 * height // 5, 2 * width // 5 : 3 * width // 5]
        assert (centre.max(axis=-1) < 0.999).mean() > 0.5, f"heatmap {column} is missing"


def test_attention_columns_come_from_the_tested_validation_and_the_align_result(tmp_path):
    metrics = write_run(tmp_path, "luong_local_p", 1, beam_bleu=20.0)
    metrics["train"]["best_update"] = 5  # the first validation's checkpoint was tested
    metrics["validations"][0].update(attn_entropy=1.5, attn_monotonicity=0.8)
    metrics["validations"][1].update(attn_entropy=9.0, attn_monotonicity=0.1)
    run_dir = tmp_path / "luong_local_p_seed1"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    write_run(tmp_path, "bahdanau", 1, beam_bleu=21.0)  # never aligned: no AER
    aligned = run_dir / "eval" / "align.rwth_de_en"
    aligned.mkdir(parents=True)
    (aligned / "metrics.json").write_text(json.dumps({"model": {"aer": 0.42}}))
    example = {"source": ["a", "b"], "target": ["x"], "weights": [[0.3, 0.7]], "sure": [[1, 0]]}
    (aligned / "examples.json").write_text(json.dumps({"examples": [example]}))
    summaries = {s.variant: s for s in compare.summarise(compare.load_runs(tmp_path))}
    local_p = summaries["luong_local_p"].mean
    assert (local_p["aer"], local_p["attn_entropy"], local_p["attn_monotonicity"]) == (
        0.42,
        1.5,
        0.8,
    )
    assert math.isnan(summaries["bahdanau"].mean["aer"])
    lines = compare.markdown_report(list(summaries.values()), tmp_path)
    row = next(line for line in lines if line.startswith("| luong_local_p | 1 |"))
    header = next(line for line in lines if line.startswith("| variant | n |"))
    assert "| AER |" in header and "| 0.420 |" in row
    # write_run records no signature: the report says so rather than stating one
    assert "Test BLEU (beam4, greedy): the runs recorded no sacreBLEU signature." in lines
    compare.write_report(tmp_path, alignment="rwth_de_en")
    assert (tmp_path / "attention_grid.png").stat().st_size > 1000
