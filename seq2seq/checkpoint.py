"""Checkpoints: state dicts plus the resolved config, written atomically.

`checkpoints/last.pt` and `best.pt` hold the whole training state. With `trainer.keep_last` or
`trainer.keep_best`, each validation also writes the model's weights alone as
`checkpoints/update_<n>.pt`, for averaging (`python -m seq2seq.average`).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

# the run directory's names, re-exported: callers know them as ckpt.LAST etc.
from seq2seq.layout import BEST as BEST
from seq2seq.layout import CHECKPOINT_DIR as CHECKPOINT_DIR
from seq2seq.layout import LAST as LAST

_NUMBERED = re.compile(r"update_(\d+)\.pt")

# What older checkpoints' stored model config says differently (migrate_config rewrites it):
# modules that moved when models/ was laid out as its two families, by `_target_` prefix,
_MOVED_TARGETS = {
    "seq2seq.models.attention.": "seq2seq.models.rnn.attention.",
    "seq2seq.models.wiring.": "seq2seq.models.rnn.wiring.",
}
# the RNN's options renamed to what the Transformer calls the same thing,
_RENAMED_MODEL_KEYS = {
    "encoder_layers": "num_encoder_layers",
    "decoder_layers": "num_decoder_layers",
    "tie_embeddings": "tie_output",
}
# and the Transformer's flag that attention per step needed before it was asked for per call.
_DROPPED_MODEL_KEYS = ("step_attention",)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not one of ours."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` via a temporary file and a rename, so a kill mid-write
    never leaves a truncated checkpoint where the last good one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    # a process killed mid-write (SIGKILL, OOM) leaves a checkpoint-sized temporary file behind
    for stale in path.parent.glob(f"{prefix}*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
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


def load_checkpoint(path: str | Path, prefer: str = LAST, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint onto the CPU, failing with the file's name if it is not a valid one.
    `mmap`: tensors are read from the file when first used, so inference, which uses the
    weights alone, does not read the optimizer state that is most of a training checkpoint."""
    file = resolve_checkpoint(path, prefer)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {file} is corrupt or unreadable: {err}") from err
    required = {"model", "config", "tokenizer", "progress"}
    if not isinstance(payload, dict) or not required <= set(payload):
        raise CheckpointError(
            f"{file} is not a seq2seq checkpoint (expected keys {sorted(required)})"
        )
    payload["path"] = str(file)
    for key in ("config", "config_raw"):
        if payload.get(key) is not None:
            payload[key] = migrate_config(payload[key])
    return payload


def migrate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run config in today's terms: old module paths and model key names rewritten
    (see `_MOVED_TARGETS` and `_RENAMED_MODEL_KEYS`), so a checkpoint written before a rename
    still builds its model and resumes; today's configs pass through unchanged."""
    config = dict(config)
    model = config.get("model")
    if isinstance(model, Mapping):
        model = {
            _RENAMED_MODEL_KEYS.get(key, key): value
            for key, value in model.items()
            if key not in _DROPPED_MODEL_KEYS
        }
        config["model"] = _moved_targets(model)
    return config


def _moved_targets(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {key: _moved_targets(value) for key, value in node.items()}
    if isinstance(node, str):
        for old, new in _MOVED_TARGETS.items():
            if node.startswith(old):
                return new + node[len(old) :]
    return node


def numbered_name(update: int) -> str:
    return f"update_{update}.pt"


def numbered_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """The `update_<n>.pt` files in `directory`, by update."""
    found = []
    for path in Path(directory).glob("update_*.pt"):
        if match := _NUMBERED.fullmatch(path.name):
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_numbered(
    directory: Path,
    scores: dict[int, float],
    *,
    keep_last: int,
    keep_best: int,
    higher_is_better: bool,
) -> list[Path]:
    """Delete the numbered checkpoints that are neither among the `keep_last` latest nor among
    the `keep_best` best by `scores` (update -> validation metric); return the deleted."""
    on_disk = numbered_checkpoints(directory)
    updates = [update for update, _ in on_disk]
    keep = set(updates[-keep_last:]) if keep_last else set()
    keep.update(rank_by_score(updates, scores, higher_is_better)[:keep_best])
    deleted = [path for update, path in on_disk if update not in keep]
    for path in deleted:
        path.unlink(missing_ok=True)
    return deleted


def rank_by_score(
    updates: list[int], scores: dict[int, float], higher_is_better: bool
) -> list[int]:
    """The scored `updates`, best first; of equal scores the earlier first, as the trainer's
    best checkpoint is the first to reach its score."""
    sign = -1 if higher_is_better else 1
    return sorted((u for u in updates if u in scores), key=lambda u: (sign * scores[u], u))


def require_training_state(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` if it can continue training; a weights-only checkpoint cannot."""
    if "optimizer" not in payload:
        raise CheckpointError(
            f"{payload['path']} holds model weights only (a numbered or averaged "
            f"checkpoint), not a training state to resume; resume from {LAST}"
        )
    return payload
