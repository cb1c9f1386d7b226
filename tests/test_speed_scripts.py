"""The speed scripts: scripts/beam_step_cost.py (a beam step's time and its vocabulary
projection's share, on the test batches of median and largest size, K rows per sentence) and
scripts/bench_at_commit.sh (the bench on another commit's code)."""

from __future__ import annotations

import re
import subprocess
import sys

from support import REPO

SCRIPT = REPO / "scripts" / "beam_step_cost.py"
AT_COMMIT = REPO / "scripts" / "bench_at_commit.sh"


def test_beam_step_cost_reports_each_batch_rows_and_the_projection_share(tmp_path):
    overrides = [
        "data=toy_reverse",
        "model.hidden_size=16",
        "model.embedding_size=16",
        f"cache_dir={tmp_path}",
    ]
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "rnn_bahdanau",
            "--beam",
            "3",
            "--steps",
            "2",
            "--repeats",
            "1",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("rnn_bahdanau, ") and "search in fp32" in lines[0]
    pattern = re.compile(
        r"(\d+) sentences x 3 = (\d+) rows, source length \d+: step ([\d.]+) ms, of which "
        r"output layer \+ log-softmax ([\d.]+) ms \((\d+)%\)"
    )
    reports = [pattern.fullmatch(line) for line in lines[1:]]
    assert len(reports) == 2 and all(reports), lines
    for report in reports:
        sentences, rows, step, projection, share = report.groups()
        assert int(rows) == 3 * int(sentences)
        assert 0 < float(projection) and 0 < float(step)
        # the share is the projection's part of the step, within the rounding of the printed
        # milliseconds (to 0.01 ms, coarse for a toy model's steps) and of the share itself
        low = 100 * (float(projection) - 0.005) / (float(step) + 0.005)
        high = 100 * (float(projection) + 0.005) / max(float(step) - 0.005, 1e-9)
        assert low - 0.5 <= int(share) <= high + 0.5


def test_bench_at_commit_refuses_what_is_not_a_commit(tmp_path):
    result = subprocess.run(
        ["bash", str(AT_COMMIT), "no-such-commit", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no-such-commit is not a commit of {REPO}"
    assert not (tmp_path / "out").exists()


def test_bench_at_commit_skips_a_run_it_already_finished(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    result = subprocess.run(
        ["bash", str(AT_COMMIT), "HEAD", str(tmp_path), "--models", "rnn_bahdanau"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == f"{tmp_path}/results.json exists: skipped"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
