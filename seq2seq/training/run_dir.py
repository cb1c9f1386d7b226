"""One training, one directory: where a continued run writes, who owns a run directory, whether
it is finished, and the command that continues it.

- `trainer.resume=<run dir>` (or a checkpoint in its `checkpoints/`) makes Hydra's run directory
  that run's directory (the resolver in `hydra.run.dir` of configs/train.yaml), and Hydra records
  the continuation's config and overrides in `.hydra/resumed-<time>/`, beside the first run's.
- `trainer.resume=auto` continues the run in Hydra's directory when it holds a checkpoint, skips
  it when it is finished (it holds `metrics.json`) and starts afresh otherwise: re-running a sweep
  with the same `hydra.sweep.dir` finishes what an interruption left unfinished.
- `<run dir>/.lock` is flock-ed by the process training there, so a second one fails at once;
  the operating system releases the lock when its owner ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from seq2seq import layout

AUTO = "auto"
LOCK_FILE = ".lock"
METRICS_FILE = "metrics.json"


class RunDirError(ValueError):
    """A run directory that is in use, or that holds a run the command would overwrite."""


def continued_run_dir(resume: str | None) -> Path | None:
    """The run directory a `trainer.resume` value continues: that directory, or the one whose
    `checkpoints/` holds the file; None for no resume, `auto`, or a checkpoint kept elsewhere
    (whose continuation gets a directory of its own)."""
    if resume is None or str(resume) == AUTO:
        return None
    path = Path(str(resume)).expanduser()
    if path.is_dir():
        return path
    if path.parent.name == layout.CHECKPOINT_DIR:
        return path.parent.parent
    return None


def _hydra_run_dir(resume: str | None, default: str) -> str:
    target = continued_run_dir(resume)
    return str(target) if target is not None else default


_subdirs: dict[str, str | None] = {}  # one answer per directory: Hydra may ask more than once


def _hydra_output_subdir(output_dir: str) -> str | None:
    """`.hydra` in a new run directory; in one that has it already (a continued run),
    `.hydra/resumed-<time>`, so the first run's record stays. Processes of a multi-process job
    other than the first write none (they would only copy the first one's)."""
    if output_dir not in _subdirs:
        rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
        if rank != 0:
            _subdirs[output_dir] = None
        elif (Path(output_dir) / ".hydra" / "overrides.yaml").exists():
            _subdirs[output_dir] = f".hydra/resumed-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        else:
            _subdirs[output_dir] = ".hydra"
    return _subdirs[output_dir]


def register_resolvers() -> None:
    """The resolvers configs/train.yaml uses in `hydra.run.dir` and `hydra.output_subdir`."""
    OmegaConf.register_new_resolver("seq2seq.run_dir", _hydra_run_dir, replace=True)
    OmegaConf.register_new_resolver("seq2seq.hydra_subdir", _hydra_output_subdir, replace=True)


FINISHED = "finished"


def resume_source(resume: str | None, run_dir: Path) -> str | Path | None:
    """What `trainer.resume` asks of this run directory: a checkpoint (file or run directory)
    to continue from, None to start afresh, or FINISHED (auto, and the run is done)."""
    last = run_dir / layout.CHECKPOINT_DIR / layout.LAST
    if str(resume) == AUTO:
        if (run_dir / METRICS_FILE).is_file():
            return FINISHED
        return run_dir if last.is_file() else None
    if resume is None and last.is_file():
        raise RunDirError(
            f"run directory {run_dir} already holds a run ({last}); continue it with "
            f"trainer.resume={run_dir} (or trainer.resume=auto), or choose another hydra.run.dir"
        )
    return resume


def finished_metric(run_dir: Path) -> float:
    """The best validation metric a finished run stored in its metrics.json."""
    best = json.loads((run_dir / METRICS_FILE).read_text())["train"]["best_metric"]
    return float("nan") if best is None else float(best)


class RunLock:
    """Exclusive ownership of a run directory while training writes it (rank 0 of a job only:
    `enabled=False` for the others)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.enabled = enabled
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"run directory {self.path.parent} is in use by process {owner}; wait for it "
                "to end or stop it, or choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _hydra_overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def resume_command(run_dir: Path, *settings: str) -> str:
    """The command that continues the run in `run_dir` (its settings come from its checkpoint),
    with `settings` (e.g. "optim.lr=1e-05") changed."""
    return shlex.join(["python", "-m", "seq2seq.train", f"trainer.resume={run_dir}", *settings])


def restart_command(*settings: str) -> str:
    """This run's command line with `settings` in place of the values it gave those keys."""
    keys = {s.split("=", 1)[0] for s in settings}
    kept = [o for o in _hydra_overrides() if o.split("=", 1)[0].lstrip("+~") not in keys]
    return shlex.join(["python", "-m", "seq2seq.train", *kept, *settings])


def other_rank_overrides() -> list[str]:
    """Command-line overrides for processes other than rank 0 of a torchrun job: Hydra then
    creates no run directory, config copies or log file for them (rank 0 writes the run's)."""
    if int(os.environ.get("RANK", "0")) == 0:
        return []
    return [
        "hydra.run.dir=.",
        "hydra.sweep.dir=.",
        "hydra.sweep.subdir=.",
        "hydra.output_subdir=null",
        "hydra/job_logging=stderr",
    ]
