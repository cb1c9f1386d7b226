"""The models' dropout (seq2seq/models/dropout.py): nn.Dropout's behaviour, its CPU mask drawn
four elements to one 64-bit draw."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seq2seq.models import dropout as drop

COUNT = 1_000_003  # not a multiple of four: the last draw is cut


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_each_element_is_kept_with_probability_one_minus_p_independently(p):
    torch.manual_seed(0)
    keep = drop.keep_mask(torch.Size([COUNT]), p).double()
    expected = drop.keep_probability(p)
    assert abs(expected - (1 - p)) <= 2**-16  # p rounded to 15 bits
    spread = (expected * (1 - expected) / COUNT) ** 0.5
    assert abs(keep.mean().item() - expected) < 5 * spread
    # the four elements of one 64-bit draw, and neighbouring draws, are uncorrelated
    centred = keep[: COUNT // 4 * 4].view(-1, 4) - expected
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        correlation = (centred[:, a] * centred[:, b]).mean() / (expected * (1 - expected))
        assert abs(correlation.item()) < 5 / (COUNT / 4) ** 0.5
    across = (centred[:-1, 3] * centred[1:, 0]).mean() / (expected * (1 - expected))
    assert abs(across.item()) < 5 / (COUNT / 4) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_scales_the_kept_elements_and_keeps_the_expectation(dtype):
    torch.manual_seed(1)
    x = torch.full((1000, 1000), 2.0, dtype=dtype)
    out = drop.dropout(x, 0.3).float()
    kept = out != 0
    scale = 1 / drop.keep_probability(0.3)
    torch.testing.assert_close(
        out[kept], torch.full_like(out[kept], 2 * scale), **_tolerance(dtype)
    )
    assert abs(out.mean().item() - 2.0) < 0.01  # the expectation, as nn.Dropout's


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 0, "rtol": 1e-6 if dtype == torch.float32 else 4e-3}


def test_the_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    out = drop.dropout(x, 0.2)
    out.backward(torch.ones_like(out))
    kept = out != 0
    torch.testing.assert_close(x.grad, kept.float() / drop.keep_probability(0.2))


def test_the_module_is_nn_dropout_in_evaluation_at_p_zero_and_in_its_checks():
    x = torch.randn(8, 5)
    module = drop.Dropout(0.4)
    assert isinstance(module, nn.Dropout) and module.p == 0.4
    assert torch.equal(module.eval()(x), x)
    assert torch.equal(drop.Dropout(0.0).train()(x), x)
    assert torch.equal(drop.Dropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        drop.Dropout(1.5)


def test_the_mask_follows_the_seed_and_differs_between_calls():
    x = torch.ones(300, 7)
    torch.manual_seed(3)
    first, second = drop.dropout(x, 0.5), drop.dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(drop.dropout(x, 0.5), first)  # resume restores the generator's state
    assert not torch.equal(first, second)
