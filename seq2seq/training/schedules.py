"""Learning-rate schedules that torch.optim.lr_scheduler lacks, built on its LambdaLR."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


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
