"""Learning-rate schedules built from the real configs/scheduler/*.yaml."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from .conftest import REPO, compose_config

LR = 1e-3


def lrs_of(scheduler_config, updates: int, lr: float = 1e-3) -> list[float]:
    """The lr of each of `updates` updates under this scheduler config."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = instantiate(scheduler_config)(optimizer)
    seen = []
    for _ in range(updates):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def one_cycle(*overrides: str):
    return compose_config("train", "scheduler=one_cycle", *overrides).scheduler


def test_one_cycle_warms_up_to_the_lr_then_anneals_to_nearly_zero_at_the_last_update():
    lrs = lrs_of(one_cycle("trainer.max_updates=200", "scheduler.warmup_updates=20"), 200)
    peak = max(range(200), key=lrs.__getitem__)
    assert peak == 20 - 1 and lrs[peak] == pytest.approx(1e-3)  # the 20th update's lr
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))  # rising
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # then falling
    assert lrs[-1] < 1e-3 * 1e-3


def test_one_cycle_continues_from_its_state_dict():
    config = one_cycle("trainer.max_updates=50", "scheduler.warmup_updates=5")
    reference = lrs_of(config, 50)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    first = instantiate(config)(optimizer)
    for _ in range(17):
        optimizer.step()
        first.step()
    # in the order the trainer resumes: build both, then load their states
    fresh_optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    second = instantiate(config)(fresh_optimizer)
    fresh_optimizer.load_state_dict(optimizer.state_dict())
    second.load_state_dict(first.state_dict())
    continued = []
    for _ in range(50 - 17):
        continued.append(fresh_optimizer.param_groups[0]["lr"])
        fresh_optimizer.step()
        second.step()
    assert continued == pytest.approx(reference[17:])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((), "needs trainer.max_updates"),
        (("trainer.max_updates=50", "scheduler.warmup_updates=50"), "scheduler.warmup_updates"),
    ],
)
def test_one_cycle_without_a_budget_names_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        lrs_of(one_cycle(*overrides), 1)


def test_one_cycle_refuses_the_state_of_a_run_with_another_budget():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    saved = instantiate(one_cycle("trainer.max_updates=50", "scheduler.warmup_updates=5"))(
        optimizer
    ).state_dict()
    longer = instantiate(one_cycle("trainer.max_updates=80", "scheduler.warmup_updates=5"))
    with pytest.raises(
        ValueError, match="anneals over 50 updates, but trainer.max_updates is now 80"
    ):
        longer(optimizer).load_state_dict(saved)


# ---------------------------------------------- every configs/scheduler/*.yaml against its formula


def noam(warmup: int):
    """Vaswani et al. (2017) eq. (3) with the peak given as the lr: the n-th update (from 1)
    uses lr · min(n / warmup, sqrt(warmup / n))."""
    return lambda i: LR * min((i + 1) / warmup, math.sqrt(warmup / (i + 1)))


def one_cycle_formula(total: int, warmup: int):
    """Smith & Topin (2019) as torch's OneCycleLR computes it: cosine from lr/25 up to lr at
    update `warmup` (index warmup - 1), then cosine down to lr/25/1e4 at the last update."""
    start, low, peak_index = LR / 25, LR / 25 / 1e4, warmup - 1

    def cosine(first: float, last: float, fraction: float) -> float:
        return last + (first - last) / 2 * (1 + math.cos(math.pi * fraction))

    def lr(i: int) -> float:
        if i <= peak_index:
            return cosine(start, LR, i / peak_index)
        return cosine(LR, low, (i - peak_index) / (total - 1 - peak_index))

    return lr


# stem -> (overrides, the lr of update index i, the indices checked)
LR_FORMULAS = {
    "constant": ((), lambda i: LR, [0, 1, 500]),
    "noam": ((), noam(4000), [0, 1, 1999, 3998, 3999, 4000, 7999]),
    "transformer": ((), noam(400), [0, 199, 398, 399, 400, 1599]),
    "one_cycle": (
        ("trainer.max_updates=200", "scheduler.warmup_updates=20"),
        one_cycle_formula(200, 20),
        [0, 5, 18, 19, 20, 100, 198, 199],
    ),
}
# steps once per validation, on its metric: tests/training/test_arithmetic.py
PER_VALIDATION = {"plateau"}
SCHEDULES = sorted(p.stem for p in (REPO / "configs" / "scheduler").glob("*.yaml"))


@pytest.mark.parametrize("stem", [s for s in SCHEDULES if s not in PER_VALIDATION])
def test_every_schedule_follows_its_formula(stem):
    assert stem in LR_FORMULAS, f"configs/scheduler/{stem}.yaml has no formula in LR_FORMULAS"
    overrides, formula, indices = LR_FORMULAS[stem]
    config = compose_config("train", f"scheduler={stem}", *overrides).scheduler
    lrs = lrs_of(config, max(indices) + 1, lr=LR)
    assert [lrs[i] for i in indices] == pytest.approx([formula(i) for i in indices], rel=1e-6)
