"""The ablations of the study's recipe (experiment=attention_ablation, attention_ablation_small,
`make ablations`) and `make study STUDY_JOBS=2`, as composed configs and make's command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf
from support import CONFIG_DIR, REPO
from test_study import compose, sweep_points

# the recipe's ablations, for every variant; score_scale (Luong's dot and general scores over
# sqrt(d)) has its own experiment, attention_ablation_score
ABLATIONS = sorted(
    p.stem for p in (CONFIG_DIR / "ablation").glob("*.yaml") if p.stem != "score_scale"
)


def ablation_job(experiment: str, *job: str) -> DictConfig:
    return compose(f"experiment={experiment}", "study_updates=1234", *job)


def flat(cfg: DictConfig) -> dict[str, object]:
    """Every resolved leaf of the config but Hydra's node, as {dotted key: value}."""
    container = {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }

    def walk(node: object, prefix: str) -> dict[str, object]:
        if isinstance(node, dict):
            return {
                k: v for key, sub in node.items() for k, v in walk(sub, f"{prefix}{key}.").items()
            }
        return {prefix[:-1]: node}

    return walk(container, "")


def jobs_of(experiment: str, *sweep: str) -> dict[str, DictConfig]:
    """The sweep's points (with `sweep` as on the command line) by the run directory of each."""
    jobs = [ablation_job(experiment, *job) for job in sweep_points(experiment, *sweep)]
    return {OmegaConf.select(cfg, "hydra.sweep.subdir"): cfg for cfg in jobs}


# what each ablation changes: one knob of the recipe (a model's width is two keys of one knob)
CHANGES = {
    "dropout0.3": {"model.dropout": 0.3},
    "label_smoothing0": {"trainer.label_smoothing": 0.0},
    "vocab4000": {"tokenizer.vocab_size": 4000},
    "lr3e-4": {"optim.lr": 3.0e-4},
}
SMALL = {
    "bahdanau": {"model.embedding_size": 128, "model.hidden_size": 128},
    "transformer": {"model.d_model": 128, "model.ff_size": 512},
}


def test_the_ablations_change_the_transformer_unless_told_to_add_an_rnn():
    jobs = {**jobs_of("attention_ablation"), **jobs_of("attention_ablation_small")}
    assert sorted(jobs) == sorted(
        [*(f"transformer_{a}_seed1" for a in ABLATIONS), "transformer_small_seed1"]
    )


def test_every_ablation_changes_one_knob_of_the_study_recipe():
    assert sorted([*CHANGES, "anneal"]) == sorted(a for a in ABLATIONS if a != "baseline")
    both = "variant=bahdanau,transformer"
    jobs = {**jobs_of("attention_ablation", both), **jobs_of("attention_ablation_small", both)}
    expected = [f"{v}_{a}_seed1" for v in ("bahdanau", "transformer") for a in ABLATIONS]
    assert sorted(jobs) == sorted([*expected, "bahdanau_small_seed1", "transformer_small_seed1"])
    for variant in ("bahdanau", "transformer"):
        study = flat(
            compose("experiment=attention_study", "study_updates=1234", f"variant={variant}")
        )
        study["seed"] = 1  # the ablations run one seed
        assert flat(jobs[f"{variant}_baseline_seed1"]) == study
        for name, change in [*CHANGES.items(), ("small", SMALL[variant])]:
            config = flat(jobs[f"{variant}_{name}_seed1"])
            changed = {
                key for key in study.keys() | config.keys() if study.get(key) != config.get(key)
            }
            assert changed == set(change), name
            assert {key: config[key] for key in changed} == change
            assert config["trainer.max_updates"] == 1234  # the study's budget
        annealed = flat(jobs[f"{variant}_anneal_seed1"])
        changed = {k for k in study.keys() | annealed.keys() if study.get(k) != annealed.get(k)}
        assert changed and all(key.startswith("scheduler.") for key in changed)
        assert annealed["scheduler._target_"] == "seq2seq.training.schedules.one_cycle"
        assert annealed["scheduler.total_updates"] == 1234  # ends at the study's budget


def test_the_score_scale_ablation_scales_luong_general_and_nothing_else():
    jobs = jobs_of("attention_ablation_score")
    assert sorted(jobs) == ["luong_general_score_scale_seed1"]
    study = flat(
        compose("experiment=attention_study", "study_updates=1234", "variant=luong_general")
    )
    study["seed"] = 1
    config = flat(jobs["luong_general_score_scale_seed1"])
    changed = {key for key in study.keys() | config.keys() if study.get(key) != config.get(key)}
    assert {key: config[key] for key in changed} == {"model.attention.scaled": True}
    assert jobs["luong_general_score_scale_seed1"].hydra.sweep.dir == "runs/ablations/score"
    both = jobs_of("attention_ablation_score", "variant=luong_dot,luong_general")
    assert sorted(both) == ["luong_dot_score_scale_seed1", "luong_general_score_scale_seed1"]


def test_the_ablations_land_where_the_report_reads_them():
    for cfg in jobs_of("attention_ablation").values():
        assert cfg.hydra.sweep.dir == "runs/ablations" and cfg.trainer.keep_last == 5
    for cfg in jobs_of("attention_ablation_small").values():
        assert cfg.hydra.sweep.dir == "runs/ablations/small"


def make_dry_run(*arguments: str, every_line: bool = False) -> list[str]:
    """The commands `make -n` would run for the study's targets (the install step aside), or
    with `every_line` every line it prints."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "STAMP=", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line.strip() for line in out.splitlines()]
    return [line for line in lines if every_line or "seq2seq." in line or "scripts/" in line]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_study_jobs_runs_that_many_points_at_once_with_one_thread_each(jobs: str):
    # no curve or ablation sweep beside it, whatever this checkout's runs/ holds
    absent = "STUDY_CURVE_DIR=/nonexistent", "ABLATION_DIR=/nonexistent"
    train, align, scores, report = make_dry_run("study", f"STUDY_JOBS={jobs}", *absent)
    assert "experiment=attention_study" in train and "trainer.resume=auto" in train
    assert scores.endswith(
        "scripts/attention_scores.py $(dirname runs/study/*/metrics.json ) > docs/results_scores.md"
    )
    # every finished run's attention scored as alignment once, before the report reads its AER
    assert "seq2seq.align checkpoint=$run alignment=rwth_de_en" in align
    parallel = "hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.num_threads=1"
    assert (parallel in train) == (jobs == "2")
    assert report.rstrip().endswith(
        "-m seq2seq.compare runs/study --results docs/results.md --scores docs/results_scores.md "
        "--readme README.md"
    )
    launcher = compose(
        "experiment=attention_study", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    assert launcher.hydra.launcher._target_.endswith("JoblibLauncher")


def test_the_score_table_beside_the_results_page_reads_every_finished_run(tmp_path: Path):
    ablations = tmp_path / "ablations"
    for run in ("luong_general_baseline_seed1", "score/luong_general_score_scale_seed1"):
        (ablations / run).mkdir(parents=True)
        (ablations / run / "metrics.json").write_text("{}")
    (ablations / "unfinished_seed1").mkdir()
    lines = make_dry_run("study", f"ABLATION_DIR={ablations}", "RESULTS=elsewhere/page.md")
    (scores,) = [line for line in lines if "attention_scores.py" in line]
    finished = [
        ablations / "luong_general_baseline_seed1",
        ablations / "score/luong_general_score_scale_seed1",
    ]
    assert all(f"{run}/metrics.json" in scores for run in finished)
    assert "unfinished" not in scores and scores.endswith("> elsewhere/page_scores.md")


def test_make_ablations_averages_and_scores_every_run_then_reports():
    baselines, *lines = make_dry_run("ablations")
    assert baselines == (
        "scripts/ablation_baselines.sh runs/study runs/ablations transformer,luong_general"
    )
    assert "experiment=attention_ablation " in lines[0] and "variant=transformer " in lines[0]
    # the two one-run sweeps side by side, the first in the background
    small, score = lines[1:3]
    assert "hydra.sweep.dir=runs/ablations/small" in small and small.endswith("& small=$!; \\")
    assert "experiment=attention_ablation_score variant=luong_general " in score
    assert "hydra.sweep.dir=runs/ablations/score" in score
    script = "\n".join(lines[3:])
    everything = "\n".join(make_dry_run("ablations", every_line=True))
    assert "wait $small" in everything  # both finish before the averaging
    for sweep in ("runs/ablations", "runs/ablations/small", "runs/ablations/score"):
        assert f"{sweep}/*/metrics.json" in everything  # every sweep's runs averaged and scored
    assert "seq2seq.average $run --last 5" in script
    assert (
        "seq2seq.evaluate checkpoint=$run/checkpoints/average_last5.pt search.beam_size=5" in script
    )
    assert lines[-1].endswith("-m seq2seq.compare runs/ablations")


def finished_run(run_dir: Path, numbered: int) -> None:
    """A finished study run: its metrics.json and `numbered` update_<n>.pt checkpoints."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"variant": run_dir.name, "seed": 1}))
    for update in range(numbered):
        (run_dir / "checkpoints" / f"update_{500 * (update + 1)}.pt").write_bytes(b"weights")


def test_the_ablation_baseline_is_the_study_run_once_it_kept_five_checkpoints(tmp_path: Path):
    study, ablations = tmp_path / "study", tmp_path / "ablations"
    finished_run(study / "bahdanau_seed1", numbered=5)
    finished_run(study / "transformer_seed1", numbered=2)  # too few to average: trained anew
    script = [str(REPO / "scripts" / "ablation_baselines.sh"), str(study), str(ablations)]
    done = subprocess.run(
        [*script, "bahdanau,transformer"], capture_output=True, text=True, check=True
    )
    copied = ablations / "bahdanau_baseline_seed1"
    assert sorted(p.name for p in ablations.iterdir()) == [copied.name]
    assert sorted(p.name for p in (copied / "checkpoints").iterdir()) == sorted(
        p.name for p in (study / "bahdanau_seed1" / "checkpoints").iterdir()
    )
    assert f"ablation baseline {copied}" in done.stdout
    (copied / "metrics.json").write_text("{}")  # e.g. evaluated since: a rerun keeps it
    subprocess.run([*script, "bahdanau"], check=True)
    assert (copied / "metrics.json").read_text() == "{}"


@pytest.mark.slow
def test_a_parallel_sweep_trains_every_point_and_a_rerun_skips_them(tmp_path: Path):
    """What STUDY_JOBS=2 adds to a sweep, on the smoke experiment: both points train at once
    with one thread each, and the same command again finds them finished."""
    command = [
        sys.executable,
        "-m",
        "seq2seq.train",
        "-m",
        "experiment=compare_attention_smoke",
        "variant=bahdanau,luong_dot",
        "trainer.max_updates=20",
        "trainer.validate_every=10",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"cache_dir={tmp_path / 'cache'}",
        "trainer.resume=auto",
        *"hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.num_threads=1".split(),
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    files = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [path.parent.name for path in files] == ["bahdanau_seed1", "luong_dot_seed1"]
    for path in files:
        metrics = json.loads(path.read_text())
        assert metrics["train"]["updates"] == 20
        assert metrics["config"]["trainer"]["num_threads"] == 1
    written = [path.stat().st_mtime_ns for path in files]
    rerun = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    assert rerun.stderr.count("already finished") + rerun.stdout.count("already finished") == 2
    assert [path.stat().st_mtime_ns for path in files] == written
