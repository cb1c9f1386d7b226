"""Checkpoints: state dicts plus the resolved config, written atomically."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not one of ours."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` via a temporary file and a rename, so a kill mid-write
    never leaves a truncated checkpoint where the last good one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_checkpoint(path: str | Path, prefer: str = LAST) -> Path:
    """Accept a checkpoint file or a run directory (whose checkpoints/<prefer> is taken, else
    the other one of best and last)."""
    path = Path(path).expanduser()
    if path.is_dir():
        names = [prefer] + [n for n in (BEST, LAST) if n != prefer]
        candidates = [path / CHECKPOINT_DIR / name for name in names]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"no checkpoint in run directory {path}: looked for "
            + " and ".join(str(c) for c in candidates)
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def run_directory(path: str | Path) -> Path:
    """The run directory of a checkpoint file or run directory (where `eval/` results go)."""
    file = resolve_checkpoint(path, prefer=BEST)
    return file.parent.parent if file.parent.name == CHECKPOINT_DIR else file.parent


def load_checkpoint(path: str | Path, prefer: str = LAST) -> dict[str, Any]:
    """Load a checkpoint onto the CPU, failing with the file's name if it is not a valid one."""
    file = resolve_checkpoint(path, prefer)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {file} is corrupt or unreadable: {err}") from err
    required = {"model", "config", "tokenizer", "progress"}
    if not isinstance(payload, dict) or not required <= set(payload):
        raise CheckpointError(
            f"{file} is not a seq2seq checkpoint (expected keys {sorted(required)})"
        )
    payload["path"] = str(file)
    return payload
