"""Every entry point reports a user error the same way, and training ends on a signal saving
its checkpoint: the commands of issue 15, run as users run them."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import REPO

from seq2seq import cli, interrupts

TOY = (
    "data=toy_reverse",
    "data.source.train_size=200",
    "data.source.validation_size=20",
    "data.source.test_size=20",
    "model.hidden_size=16",
    "model.embedding_size=16",
    "search=greedy",
    "trainer.progress=false",
)


def start(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def user_error_cases(tmp: Path) -> dict[str, tuple[str, list[str], str]]:
    """name: (module, arguments, the start of its one line on stderr)."""
    cache = f"cache_dir={tmp / 'cache'}"
    missing = tmp / "none"
    return {
        "half_width": (
            "seq2seq.train",
            [*TOY, "model/attention=luong_local_p", "model.attention.half_width=-3", cache],
            "error: invalid model config: model.attention.half_width (w) must be >= 1, got -3",
        ),
        "lr": (
            "seq2seq.train",
            [*TOY, "optim.lr=1e38", cache],
            "error: invalid config: optim.lr=1e+38 overflows float32 in the optimizer's step",
        ),
        # the config is checked before the (missing) checkpoint is looked at
        "evaluate": (
            "seq2seq.evaluate",
            [f"checkpoint={missing}", "search.beam_size=0"],
            "error: invalid config: search.beam_size must be a positive integer, got 0",
        ),
        "translate": (
            "seq2seq.translate",
            [f"checkpoint={missing}"],
            f"error: checkpoint not found: {missing}",
        ),
        "data": (
            "seq2seq.data",
            ["data=toy_reverse", "data.max_tokens=-1", cache],
            "error: invalid data config: data.max_tokens must be a positive integer, got -1",
        ),
        "compare": ("seq2seq.compare", [str(missing)], "error: "),
        # a bad option: argparse's usage, then its `<prog>: error: ...` line (test_bench.py)
        "bench": ("seq2seq.bench", ["--models", "nope"], "usage: python -m seq2seq.bench"),
    }


@pytest.mark.parametrize("name", list(user_error_cases(Path("/tmp"))))
def test_each_user_error_prints_one_line_and_exits_2(name, tmp_path, monkeypatch, capsys):
    """In this process, as `python -m <module> <arguments>` runs it (test_sigterm_... below
    checks a real process's exit status)."""
    module, args, expected = user_error_cases(tmp_path)[name]
    if module == "seq2seq.train":
        args.append(f"hydra.run.dir={tmp_path / 'runs' / name}")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2, stderr
    assert stderr.startswith(expected), stderr
    assert stderr.count("\n") == 1 or "usage:" in stderr, stderr
    assert "error: " in stderr.splitlines()[-1]
    assert not (tmp_path / "runs").exists()  # no empty run directory left behind


def test_hydra_full_error_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    argv = ["seq2seq.evaluate", f"checkpoint={tmp_path / 'none'}", "search.beam_size=0"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(ValueError, match="search.beam_size"):  # Hydra prints it in full
        runpy.run_module("seq2seq.evaluate", run_name="__main__", alter_sys=True)


@pytest.mark.slow  # a real process, killed by a real signal: about 45 s on 2 busy cores
def test_sigterm_saves_and_prints_how_to_continue(tmp_path: Path):
    run_dir = tmp_path / "run"
    run = start(
        "seq2seq.train",
        *TOY,
        f"cache_dir={tmp_path / 'cache'}",
        "trainer.log_every=1",
        "trainer.max_updates=100000",
        f"hydra.run.dir={run_dir}",
    )
    log = run_dir / "train.log"
    deadline = time.monotonic() + 240
    while not (log.exists() and "update 3 |" in log.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by SIGTERM: saved {run_dir}/checkpoints/last.pt")
    assert last.endswith(f"continue with: python -m seq2seq.train trainer.resume={run_dir}")
    assert "Traceback" not in stderr


def test_a_second_signal_exits_at_once(monkeypatch: pytest.MonkeyPatch):
    exits = []
    monkeypatch.setattr(interrupts.os, "_exit", exits.append)
    with interrupts.StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT and exits == []  # the first asks to stop
        os.kill(os.getpid(), signal.SIGINT)
    assert exits == [130]


def test_reports_errors_turns_a_user_error_into_exit_status_2(capsys, monkeypatch):
    def broken() -> None:
        raise ValueError("trainer.patience must be a positive integer or null, got 0")

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.reports_errors(broken)()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: trainer.patience must be a positive integer or null, got 0\n"
    )


def test_an_interrupt_exits_with_128_plus_the_signal(capsys):
    def interrupted() -> None:
        raise interrupts.Interrupted(signal.SIGTERM, "interrupted by SIGTERM: saved x")

    with pytest.raises(SystemExit) as exit_:
        cli.reports_errors(interrupted)()
    assert exit_.value.code == 143
    assert capsys.readouterr().err == "interrupted by SIGTERM: saved x\n"


@pytest.mark.slow  # two real sweeps of two points: about 2 minutes on 2 busy cores
def test_rerun_sweep_command_finishes_only_the_unfinished_point(tmp_path: Path):
    sweep = tmp_path / "sweep"
    command = [
        "-m",
        *TOY,
        f"cache_dir={tmp_path / 'cache'}",
        "trainer.max_updates=4",
        f"hydra.sweep.dir={sweep}",
        "trainer.resume=auto",
        "seed=1,2",
    ]
    first = start("seq2seq.train", *command)
    assert first.communicate(timeout=600) and first.returncode == 0
    finished = (sweep / "0" / "metrics.json").read_text()
    (sweep / "1" / "metrics.json").unlink()  # point 1 was interrupted after its last checkpoint
    again = start("seq2seq.train", *command)
    log = "".join(again.communicate(timeout=600))  # Hydra's sweep logs go to stdout
    assert again.returncode == 0, log
    assert f"{sweep / '0'}: already finished" in log
    assert f"resumed from {sweep / '1'}/checkpoints/last.pt" in log
    assert (sweep / "0" / "metrics.json").read_text() == finished
    assert (sweep / "1" / "metrics.json").is_file()


@pytest.mark.parametrize(("env", "threads"), [(None, 2), ("", 2), (" 3 ", 3), ("many", "many")])
def test_num_threads_follows_omp_num_threads_and_ignores_an_empty_one(monkeypatch, env, threads):
    from support import compose_config

    from seq2seq.config import check_values

    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    cfg = compose_config("train", "data=toy_reverse")
    assert cfg.trainer.num_threads == threads
    named = [problem for problem in check_values(cfg) if "trainer.num_threads" in problem]
    assert bool(named) == (threads == "many")  # a non-number is a user error naming the key
