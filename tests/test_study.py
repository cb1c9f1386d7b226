"""The attention study's sweep (experiment=attention_study) and the learning curve that sets
its budget (experiment=attention_study_curve, python -m seq2seq.learning_curve)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import support
from omegaconf import DictConfig, OmegaConf
from support import CONFIG_DIR, compose_config

from seq2seq import learning_curve, variants
from seq2seq.checkpoint import migrate_config
from seq2seq.config import validate_config

ATTENTIONS = variants.attention_names()


compose = support.compose_with_hydra


@functools.cache
def sweep_points(experiment: str, *sweep: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(job) for job in support.sweep_points(experiment, *sweep))


@functools.cache
def study_job(*job: str) -> DictConfig:
    return compose("experiment=attention_study", "study_updates=1234", *job)


def variant_and_seed(cfg: DictConfig) -> tuple[str, int]:
    return cfg.hydra.runtime.choices.variant, cfg.seed


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_study_trains_every_attention_file_with_two_seeds(attention: str):
    jobs = [study_job(*job) for job in sweep_points("attention_study")]
    with_it = [
        cfg
        for cfg in jobs
        if "attention" in cfg.model and cfg.hydra.runtime.choices["model/attention"] == attention
    ]
    assert len({cfg.seed for cfg in with_it}) >= 2
    expected = OmegaConf.load(CONFIG_DIR / "model" / "attention" / f"{attention}.yaml")
    for cfg in with_it:
        assert cfg.model._target_.endswith("RNNSeq2Seq")
        assert cfg.model.attention == expected.attention


def test_the_study_trains_the_transformer_and_every_point_alike():
    jobs = [study_job(*job) for job in sweep_points("attention_study")]
    transformers = [cfg for cfg in jobs if cfg.model._target_.endswith("Transformer")]
    assert len({cfg.seed for cfg in transformers}) >= 2
    rnn_points = len(jobs) - len(transformers)
    assert rnn_points == len(ATTENTIONS) * len({cfg.seed for cfg in jobs})
    # one run directory per point, in one fixed sweep directory the rerun finds again
    subdirs = [OmegaConf.select(cfg, "hydra.sweep.subdir") for cfg in jobs]
    assert len(set(subdirs)) == len(jobs)
    assert subdirs[0] == "{}_seed{}".format(*variant_and_seed(jobs[0]))
    assert {cfg.hydra.sweep.dir for cfg in jobs} == {"runs/study"}
    # the same data, budget, seeds and stopping rule for all
    for cfg in jobs:
        assert cfg.data == jobs[0].data and cfg.data.name == "multi30k"
        assert cfg.trainer.max_updates == 1234 and cfg.trainer.patience is None
        assert cfg.trainer.keep_last >= 2  # checkpoints to average
    seeds = {variant: set() for variant, _ in map(variant_and_seed, jobs)}
    for variant, seed in map(variant_and_seed, jobs):
        seeds[variant].add(seed)
    assert len({frozenset(s) for s in seeds.values()}) == 1


PINS = Path(__file__).with_name("resume_pins.yaml")


@pytest.mark.parametrize("point", list(OmegaConf.load(PINS)))
def test_sweep_points_in_progress_compose_as_their_runs_started(point: str):
    """What `make study-curve` (trainer.resume=auto) continues: the pinned settings are those its
    runs started with, in their checkpoints' terms, which loading a checkpoint migrates."""
    experiment, *overrides = point.split()
    cfg = compose_config("train", f"experiment={experiment}", *overrides)
    pinned = OmegaConf.to_container(OmegaConf.load(PINS)[point])
    now = OmegaConf.to_container(cfg)
    assert {key: now[key] for key in pinned} == migrate_config(pinned)


def test_the_study_refuses_to_start_until_its_budget_is_set():
    unset = ("experiment=attention_study", "study_updates=???", "data.root=/nonexistent")
    cfg = compose_config("train", *unset)
    with pytest.raises(ValueError, match=r"study_updates must be set \(it is \?\?\? in"):
        validate_config(cfg)


def test_the_curve_runs_the_default_rnn_and_the_transformer_validated_often():
    jobs = [
        compose("experiment=attention_study_curve", *job)
        for job in sweep_points("attention_study_curve")
    ]
    assert sorted(variant_and_seed(cfg)[0] for cfg in jobs) == ["bahdanau", "transformer"]
    study = study_job(*sweep_points("attention_study")[0])
    for cfg in jobs:
        assert cfg.trainer.validate_every <= 500 and cfg.trainer.patience is None
        assert cfg.data == study.data
        assert cfg.hydra.sweep.dir == "runs/study_curve"


# ----------------------------------------------------------------------------- the budget

RISING_THEN_FLAT = [(250, 5.0), (500, 10.0), (750, 14.0), (1000, 15.0), (1500, 15.8), (2000, 16.0)]


def test_budget_is_the_first_update_within_tolerance_of_the_best_at_twice_it():
    # 750: best 14.0 against 15.8 by 1500; 1000: 15.0 against 16.0 by 2000, within 1
    assert learning_curve.flat_budget(RISING_THEN_FLAT, tolerance=1.0) == 1000
    assert learning_curve.flat_budget(RISING_THEN_FLAT, tolerance=2.0) == 750
    # a dip after the best does not count against it: the best checkpoint is kept
    dipping = [(250, 8.0), (500, 12.0), (750, 9.0), (1000, 12.5)]
    assert learning_curve.flat_budget(dipping, tolerance=1.0) == 500


def test_a_curve_too_short_to_show_the_flattening_gives_no_budget():
    assert learning_curve.flat_budget(RISING_THEN_FLAT[:4], tolerance=0.5) is None
    assert learning_curve.flat_budget([], tolerance=1.0) is None


def write_curve(root: Path, variant: str, curve: list[tuple[int, float]], seconds: float) -> None:
    run = root / f"{variant}_seed1"
    run.mkdir(parents=True)
    metrics = {
        "variant": variant,
        "seed": 1,
        "train": {"updates": curve[-1][0], "seconds": seconds},
        "test": {},
        "validations": [{"update": u, "bleu": b} for u, b in curve],
    }
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_the_report_prints_the_largest_budget_and_the_study_time(tmp_path: Path, capsys):
    write_curve(tmp_path, "bahdanau", RISING_THEN_FLAT, seconds=600.0)  # 0.3 s/update
    write_curve(tmp_path, "transformer", [(500, 20.0), (1000, 20.5), (2000, 21.0)], 1000.0)
    learning_curve.main([str(tmp_path), "--study-runs", "16"])
    out = capsys.readouterr().out
    assert "| transformer seed 1 | 2000 | 21.00 (2000) | 500 | 20.00 | 0.500 |" in out
    assert "study budget: study_updates: 1000" in out
    # 16 runs × 1000 updates × 0.4 s = 6400 s
    assert "= 1.8 h" in out


def test_a_run_still_climbing_is_named_and_no_budget_printed(tmp_path: Path, capsys):
    write_curve(tmp_path, "transformer", [(500, 10.0), (1000, 15.0), (2000, 21.0)], 100.0)
    learning_curve.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "no budget: transformer seed 1 still climbing" in out
    assert "study budget" not in out


def test_a_time_limit_sets_the_budget_and_says_what_each_curve_still_gains(tmp_path, capsys):
    climbing = [(500, 10.0), (1000, 14.0), (1500, 16.0), (2000, 18.0), (3000, 19.0), (4000, 20.0)]
    write_curve(tmp_path, "bahdanau", climbing, seconds=1600.0)  # 0.4 s/update
    write_curve(tmp_path, "transformer", climbing, seconds=2400.0)  # 0.6 s/update
    # 20 runs, 2 at a time, 0.5 s/update: 500 updates take 20 × 500 × 0.5 / 2 s = 0.69 h
    learning_curve.main([str(tmp_path), "--study-runs", "20", "--jobs", "2", "--max-hours", "2"])
    out = capsys.readouterr().out
    assert "not flat yet; fit 2 h: the time limit sets the budget" in out
    assert "| bahdanau seed 1 | 14.00 | 18.00 | 4.00 |" in out  # by 1000 and by 2000
    assert "study budget: study_updates: 1000" in out
    assert "= 1.4 h, 2 runs at a time" in out


def test_a_flat_budget_that_does_not_fit_the_time_limit_is_cut_to_what_fits(tmp_path, capsys):
    write_curve(tmp_path, "bahdanau", RISING_THEN_FLAT, seconds=600.0)  # flat at 1000, 0.3 s
    learning_curve.main([str(tmp_path), "--study-runs", "24", "--max-hours", "1.5"])
    out = capsys.readouterr().out
    # 24 × 500 × 0.3 s = 1 h per 500 updates: 500 fits 1.5 h, 1000 does not
    assert "the flat budget 1000 does not fit 1.5 h" in out
    assert "study budget: study_updates: 500" in out
    learning_curve.main([str(tmp_path), "--study-runs", "24", "--max-hours", "2"])
    assert "study budget: study_updates: 1000" in capsys.readouterr().out  # it fits: kept
    # a measured rate instead of the curve's own: 24 × 500 × 0.9 s = 3 h per 500 updates
    arguments = ["--study-runs", "24", "--max-hours", "3", "--seconds-per-update", "0.9"]
    learning_curve.main([str(tmp_path), *arguments])
    out = capsys.readouterr().out
    assert "study budget: study_updates: 500" in out and "0.900 s/update (given)" in out


def test_a_time_limit_needs_the_number_of_runs(tmp_path, capsys):
    write_curve(tmp_path, "bahdanau", RISING_THEN_FLAT, seconds=600.0)
    with pytest.raises(SystemExit) as exit_info:
        learning_curve.main([str(tmp_path), "--max-hours", "8"])
    assert exit_info.value.code == 2
    assert "--max-hours needs --study-runs" in capsys.readouterr().err
