"""Learning-rate schedules built from the real configs/scheduler/*.yaml."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from .conftest import compose_config


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
