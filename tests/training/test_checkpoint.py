"""Crash-safe writes, tested by crashing them: the previous file survives byte for byte.

Each crash happens after the new content has started to reach the disk (the serialiser has
written part of it, or the rename fails, or the process is killed mid-pickle), which is where
a plain `torch.save(payload, path)` or `path.write_text(...)` would already have destroyed
the previous file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq import checkpoint as ckpt
from seq2seq import evaluation

from .conftest import REPO


class Crash(Exception):
    """Stands in for a failure in the middle of a write (full disk, I/O error)."""


def payload(value: float) -> dict:
    weights = {"weight": torch.full((64, 64), value)}
    return {"model": weights, "config": {}, "tokenizer": {}, "progress": {}}


def leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "checkpoints" / ckpt.LAST
    ckpt.save_checkpoint(payload(1.0), path)
    return path, path.read_bytes()


def test_a_serialiser_failing_halfway_leaves_the_previous_checkpoint(previous, monkeypatch):
    path, before = previous
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        # write to whatever the caller opened (or named), then fail before the end
        if isinstance(f, str | os.PathLike):
            f = open(f, "wb")  # noqa: SIM115 - the crash leaves it open, as a real one would
        real_save(obj, f, *args, **kwargs)
        f.flush()
        f.truncate(f.tell() // 2)
        raise Crash("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(Crash):
        ckpt.save_checkpoint(payload(2.0), path)
    assert path.read_bytes() == before
    assert leftovers(path.parent, keep=path.name) == []
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["model"]["weight"][0, 0] == 1.0


def fail(*args, **kwargs):
    raise Crash("rename failed")


# (file name, first content written, a write of new content)
WRITERS = {
    "checkpoint": (
        "checkpoints/last.pt",
        lambda path: ckpt.save_checkpoint(payload(1.0), path),
        lambda path: ckpt.save_checkpoint(payload(2.0), path),
    ),
    "json": (
        "run/metrics.json",
        lambda path: evaluation.write_json(path, {"bleu": 35.2}),
        lambda path: evaluation.write_json(path, {"bleu": 1.0}),
    ),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_failing_rename_leaves_the_previous_file(writer, tmp_path, monkeypatch):
    name, write_first, write_again = WRITERS[writer]
    path = tmp_path / name
    write_first(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(Crash):
        write_again(path)
    assert path.read_bytes() == before
    assert leftovers(path.parent, keep=path.name) == []


KILLED_MID_PICKLE = """
import os, signal, sys, torch
from pathlib import Path
from seq2seq.checkpoint import save_checkpoint

class KillWhilePickled:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

payload = {"model": {"weight": torch.full((64, 64), 2.0)}, "config": {}, "tokenizer": {},
           "progress": KillWhilePickled()}
save_checkpoint(payload, Path(sys.argv[1]))
"""


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(previous):
    path, before = previous
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_PICKLE, str(path)], cwd=REPO, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    # SIGKILL leaves no chance to clean up; the next write of that checkpoint removes the debris
    ckpt.save_checkpoint(payload(3.0), path)
    assert leftovers(path.parent, keep=path.name) == []
    assert ckpt.load_checkpoint(path)["model"]["weight"][0, 0] == 3.0


@pytest.fixture
def previous_json(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "run" / "metrics.json"
    evaluation.write_json(path, {"bleu": 35.2})
    return path, path.read_bytes()


def test_a_json_write_failing_halfway_leaves_the_previous_file(previous_json, monkeypatch):
    path, before = previous_json
    real_fdopen = os.fdopen

    class HalfWriter:
        """A file that takes half of what it is given, then fails (a full disk)."""

        def __init__(self, *args, **kwargs):
            self.file = real_fdopen(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            raise Crash("disk full")

    monkeypatch.setattr(os, "fdopen", HalfWriter)
    with pytest.raises(Crash):
        evaluation.write_json(path, {"bleu": 1.0, "chrf": 50.0})
    assert path.read_bytes() == before
    assert json.loads(before) == {"bleu": 35.2}
    assert leftovers(path.parent, keep=path.name) == []
