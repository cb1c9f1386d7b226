"""What a run records for people: TensorBoard events in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

TENSORBOARD_DIR = "tensorboard"


class RunLogger:
    """TensorBoard scalars for training updates and validations.

    The writer opens on first use, so runs that never log (rank > 0, dry runs) leave no files.
    """

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.enabled = enabled
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def train_update(self, update: int, stats: Any, lr: float) -> None:
        if not self.enabled:
            return
        w = self.writer
        w.add_scalar("train/loss", stats.loss, update)
        w.add_scalar("train/lr", lr, update)
        w.add_scalar("train/grad_norm", stats.grad_norm, update)
        w.add_scalar("train/tgt_tokens_per_s", stats.tgt_tokens / stats.seconds, update)

    def validation(self, update: int, result: Any) -> None:
        if not self.enabled:
            return
        for name, value in result.metrics.items():
            self.writer.add_scalar(f"validation/{name}", value, update)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
