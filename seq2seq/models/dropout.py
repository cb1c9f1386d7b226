"""Dropout (Srivastava et al., 2014) whose mask is cheap to draw on a CPU.

PyTorch draws a CPU dropout mask with `bernoulli_`, one Mersenne-Twister draw and a comparison
per element: ~6 ns an element on this machine's one thread, ~2 ms for one (60, 22, 256) batch of
activations, and a training update draws ~20 of them. Here one 64-bit draw (`random_` on int64)
gives four elements 15 random bits each, and an element is kept where its bits are at least
round(p · 2^15): the same Bernoulli mask, with p rounded to a multiple of 2^-15 (0.1 becomes
0.100006), at a quarter of the draws. Kept elements are scaled by 1 / (1 - that p), so the
expectation of every element is unchanged, as with `nn.Dropout`. Off the CPU (CUDA's own
generator is fast) it is `F.dropout`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = 1 << 15  # 15 random bits an element


def keep_probability(p: float) -> float:
    """The probability of keeping an element: 1 - p, with p rounded to a multiple of 2^-15."""
    return 1 - round(p * LEVELS) / LEVELS


def keep_mask(shape: torch.Size, p: float, generator: torch.Generator | None = None) -> Tensor:
    """A CPU mask of `shape`, 1 with `keep_probability(p)` and 0 otherwise, independently.

    int16, not bool: it is made by int16 arithmetic and turns into a float dtype by a
    vectorised conversion, where a bool mask's comparison and conversion cost more than the draw.
    """
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(generator=generator)
    # random_ fills an int64 with 63 random bits: each 16-bit quarter has at least 15
    bits = words.view(torch.int16)[:count].view(shape).bitwise_and_(LEVELS - 1)
    # bits - threshold is negative (sign bit set) exactly where the element is dropped
    return bits.sub_(round(p * LEVELS)).bitwise_right_shift_(15).add_(1)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """`F.dropout(x, p, training)`, its CPU mask drawn by `keep_mask`."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, training)
    # the mask scaled once: backward multiplies the gradient by it in one product
    scaled = keep_mask(x.shape, p).to(x.dtype).mul_(1 / keep_probability(p))
    return x * scaled


class Dropout(nn.Dropout):
    """`nn.Dropout` (same argument checks, same `p`), drawing its mask by `keep_mask` on a CPU."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
