"""`python -m seq2seq.bench startup`: start-up timing of train --help and translate, and its
summary of `python -X importtime` (the timings themselves are the quiet sitting's to judge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seq2seq.bench import startup

# as `python -X importtime` writes it: a module's imports before it, two spaces deeper
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       300 |        300 |     torch._C
import time:       700 |       1000 |   torch
import time:        50 |       1050 | seq2seq.runtime
import time:       200 |        200 |   sacrebleu.metrics
import time:        40 |        240 | sacrebleu
import time:        30 |         30 |     yaml
import time:        20 |         50 |   omegaconf
import time:        10 |         60 | seq2seq.paths
"""


def test_importtime_summary_by_package_and_by_what_seq2seq_imports():
    rows = startup.parse_importtime("noise\n" + IMPORTTIME)
    assert rows[0] == ("torch._C", 300, 300, 2) and rows[2] == ("seq2seq.runtime", 50, 1050, 0)
    summary = startup.importtime_summary(rows, top=3)
    assert summary["total_ms"] == pytest.approx(1.4)  # 1,350 µs
    assert summary["packages"] == [
        {"package": "torch", "ms": 1.0},
        {"package": "sacrebleu", "ms": 0.2},
        {"package": "seq2seq", "ms": 0.1},
    ]
    # imported by the command itself (depth 0) or by one of seq2seq's modules; yaml is
    # omegaconf's, not ours
    assert summary["from_seq2seq"] == [
        {"module": "torch", "by": "seq2seq.runtime", "ms": 1.0},
        {"module": "sacrebleu", "by": "seq2seq (the command)", "ms": 0.2},
        {"module": "omegaconf", "by": "seq2seq.paths", "ms": 0.1},
    ]


def test_startup_times_each_command_and_writes_its_report(trained_run: Path, tmp_path: Path):
    argv = ["--runs", "1", "--checkpoint", str(trained_run), "--out", str(tmp_path)]
    results = startup.main(argv)
    assert json.loads((tmp_path / "startup.json").read_text()) == results
    assert list(results["commands"]) == ["import torch", *startup.GOALS]
    for timing in results["commands"].values():
        assert 0 < timing["first_line"]["median"] <= timing["exit"]["median"]
        assert timing["cpu"]["median"] > 0
    imported = {row["module"] for row in results["importtime"]["from_seq2seq"]}
    assert "torch" in imported and "sacrebleu" not in imported  # translating scores nothing
    table = (tmp_path / "startup.md").read_text()
    assert "| translate, first sentence |" in table and "first line < 1.5 s: " in table
    assert "exit < 1.5 s: " in table  # train --help: until it has exited
    assert str(trained_run) in table


def test_bad_runs_are_refused(capsys):
    with pytest.raises(SystemExit):
        startup.parse_args(["--runs", "0"])
    assert "--runs must be at least 1" in capsys.readouterr().err


@pytest.mark.slow  # trains the default model a few updates on the toy task first
def test_startup_trains_a_tiny_model_to_translate_with(tmp_path: Path):
    checkpoint = startup.train_tiny_checkpoint(tmp_path, startup.checkout_root() or Path.cwd())
    assert (checkpoint / "checkpoints" / "best.pt").is_file()
