"""Learning-rate schedules: those torch.optim.lr_scheduler lacks, and its own set up for configs."""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def inverse_sqrt_warmup(optimizer: Optimizer, warmup_updates: int = 4000) -> LambdaLR:
    """Linear warm-up to the optimizer's lr over `warmup_updates`, then lr * sqrt(warmup / update).

    The "noam" schedule of Vaswani et al. (2017), with its peak given directly as the lr.
    """
    if warmup_updates < 1:
        raise ValueError(f"scheduler.warmup_updates must be >= 1, got {warmup_updates}")

    def factor(update: int) -> float:
        update += 1  # LambdaLR starts counting at 0
        return min(update / warmup_updates, math.sqrt(warmup_updates / update))

    return LambdaLR(optimizer, factor)


class _BudgetedOneCycle(OneCycleLR):
    """OneCycleLR that refuses a saved state of another length instead of failing mid-run."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["total_steps"] != self.total_steps:
            raise ValueError(
                f"the checkpoint's scheduler=one_cycle anneals over {state_dict['total_steps']} "
                f"updates, but trainer.max_updates is now {self.total_steps}: an annealed "
                "schedule cannot be stretched; resume with the budget the run started with"
            )
        super().load_state_dict(state_dict)


def one_cycle(
    optimizer: Optimizer, total_updates: int | None, warmup_updates: int = 100
) -> OneCycleLR:
    """Warm up to the optimizer's lr over `warmup_updates`, then anneal it (cosine) to nearly
    zero at update `total_updates`: torch's OneCycleLR (Smith & Topin, 2019) without its
    momentum cycle, so Adam's betas stay as `optim` sets them.

    For runs with a fixed budget (trainer.max_updates): the weights settle as the lr falls, so
    the last update is the run's best rather than one noisy point of a still-moving curve.
    """
    if total_updates is None or total_updates < 2:
        raise ValueError(
            "scheduler=one_cycle anneals over the whole run, so it needs trainer.max_updates "
            f"(scheduler.total_updates) >= 2, got {total_updates}"
        )
    if not 1 <= warmup_updates < total_updates:
        raise ValueError(
            f"scheduler.warmup_updates must be in [1, {total_updates}) (scheduler.total_updates), "
            f"got {warmup_updates}"
        )
    return _BudgetedOneCycle(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total_updates,
        pct_start=warmup_updates / total_updates,
        cycle_momentum=False,
    )


def rescale(optimizer: Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply every learning rate the optimizer and its schedule hold by `factor`: the
    schedule keeps its position and shape (warm-up, decay, plateau reductions) at the new scale.
    This is how a run resumed with another optim.lr continues."""
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):  # OneCycleLR keeps the last three
            if isinstance(group.get(key), float | int):
                group[key] *= factor
    for name in ("base_lrs", "_last_lr"):
        if isinstance(getattr(scheduler, name, None), list):
            setattr(scheduler, name, [lr * factor for lr in getattr(scheduler, name)])
