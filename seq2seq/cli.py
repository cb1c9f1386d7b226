"""How every command-line entry point ends when something is wrong with what it was given.

A user's mistake (a bad config value, a missing or malformed file, an unusable checkpoint, a
run directory in use, a diverged run) prints one line, `error: <message>`, on stderr and exits
with status 2, leaving no empty run directory behind; `HYDRA_FULL_ERROR=1` shows the traceback
instead. Tracebacks are for bugs. An interrupted training (Ctrl-C, SIGTERM) that saved its
checkpoint prints how to continue and exits with 128 + the signal number (130, 143).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from seq2seq.interrupts import Interrupted, pass_on

# ValueError covers the config checks, CheckpointError, RunDirError and ResumeConfigError;
# FloatingPointError the trainer's DivergenceError
USER_ERRORS = (ValueError, OSError, FloatingPointError, HydraException, OmegaConfBaseException)
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
HELP_FLAGS = {"--help", "-h", "--hydra-help"}

P = ParamSpec("P")
T = TypeVar("T")


def reports_errors(main: Callable[P, T]) -> Callable[P, T]:
    """Decorate an entry point's main function (under `@hydra.main`, so the Hydra run's files
    are known) to report user errors and interrupts as above."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return main(*args, **kwargs)
        except Interrupted as stop:
            print(stop, file=sys.stderr)
            pass_on(stop.signum)
            sys.exit(stop.exit_status)
        except KeyboardInterrupt:  # Ctrl-C outside the training loop: nothing to save
            print("interrupted", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        except USER_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _remove_new_run_files()
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return run


def share_help_repository() -> None:
    """Make `--help` build Hydra's config repository once, not once per config group.

    Hydra's help lists each group's options through a fresh deep copy of the whole repository
    (every file and config-store node) per group and per option kind: ~260 copies here, about 1
    of `train --help`'s 1.5 s. Nothing changes the repository while help is printed, so one copy
    per (config name, overrides) serves every call; other commands are left as Hydra made them.
    """
    if not HELP_FLAGS & set(sys.argv[1:]):
        return
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    build = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    built: dict[tuple, object] = {}

    def build_once(loader, config_name, overrides):
        key = (config_name, tuple(overrides))
        if key not in built:
            built[key] = build(loader, config_name, overrides)
        return built[key]

    ConfigLoaderImpl._parse_overrides_and_create_caching_repo = build_once


def fail(message: str) -> None:
    """End a command without Hydra the same way: `error: <message>`, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _remove_new_run_files() -> None:
    """Remove what Hydra wrote for this job, the config copies in `.hydra/` (or the
    `.hydra/resumed-*` of a continued run) and, in a directory with nothing else, the log
    and lock files and the directory itself, so a run that failed to start leaves nothing."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir is None:  # evaluate, translate, ranks > 0: Hydra wrote nothing
        return
    run_dir = Path(hydra_cfg.runtime.output_dir)
    subdir = run_dir / hydra_cfg.output_subdir
    for name in HYDRA_FILES:
        (subdir / name).unlink(missing_ok=True)
    _remove_if_empty(subdir)
    _remove_if_empty(run_dir / ".hydra")
    own = {f"{hydra_cfg.job.name}.log", ".lock"}
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= own:
        for name in own:
            (run_dir / name).unlink(missing_ok=True)
        _remove_if_empty(run_dir)
        if run_dir.parent.resolve() != Path.cwd():
            _remove_if_empty(run_dir.parent)  # runs/<date>/ of Hydra's default run directory


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty, or not there
        pass
