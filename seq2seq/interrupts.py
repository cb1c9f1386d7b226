"""Ctrl-C and SIGTERM (a Slurm preemption or time limit) stop training at the next update
boundary, so the run can save a checkpoint; a second signal exits at once. SIGUSR2 does the
same: it is the signal submitit sends ahead of a job's time limit (hydra/launcher=slurm), and
whose handler, called after the save, requeues the job."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class Interrupted(Exception):  # noqa: N818 - it is what happened, not an error
    """Training stopped on a signal after saving; the process should exit with `exit_status`."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum  # what a shell reports for a process the signal ended


class StopRequests:
    """While entered, SIGINT and SIGTERM set `signum` instead of ending the process (in the main
    thread only: Python delivers signals there)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            os.write(2, b"second interrupt: exiting at once, without saving\n")
            os._exit(128 + signum)
        self.signum = signum
        log.warning(
            "%s received: stopping after the current update to save a checkpoint "
            "(send it again to exit at once)",
            signal.Signals(signum).name,
        )


def pass_on(signum: int) -> None:
    """Hand a signal, once training has saved, to the handler it had before (submitit's
    requeues the job); Python's own (Ctrl-C's KeyboardInterrupt) and the defaults are left."""
    handler = signal.getsignal(signum)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signum, None)
