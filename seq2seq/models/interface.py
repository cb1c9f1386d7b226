"""The step-wise interface that every translation model implements.

Search (greedy, beam) and the trainer only ever talk to this interface, so they never ask
which model they drive (the idea behind fairseq's `reorder_incremental_state`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


class DecoderState(abc.ABC):
    """Everything a model needs to advance one target step, for a batch of B hypotheses."""

    @abc.abstractmethod
    def reorder(self, indices: Tensor) -> DecoderState:
        """Return the state of hypotheses `indices` (LongTensor (B',)), in that order.

        Beam search calls this to follow the surviving beams and to drop finished sentences;
        the encoder memory carried in the state must be reordered with it.
        """


@dataclass
class StepOutput:
    log_probs: Tensor  # (B, V) log-probabilities of the next token
    state: DecoderState
    attention: Tensor | None = None  # (B, S) attention over the source, only when asked for


@dataclass
class ModelOutput:
    # (B, T, V) unnormalised scores for every target position (teacher forcing), or (N, V) for
    # the N positions `forward` was asked to score
    logits: Tensor
    attention: Tensor | None = None  # (B, T, S), only when asked for
    # (B, T) source position each row's attention window was centred on (local attention)
    attention_centers: Tensor | None = None


class Seq2SeqModel(nn.Module, abc.ABC):
    """An encoder-decoder translation model.

    Constructors take `src_vocab_size`, `tgt_vocab_size` and `pad_id` at instantiate time (they
    are known only once the tokenizer exists) plus their own typed hyper-parameters.
    """

    pad_id: int

    @abc.abstractmethod
    def encode(self, src: Tensor, src_lengths: Tensor) -> Any:
        """Encode source ids (B, S), padded with `pad_id`, with true lengths (B,)."""

    @abc.abstractmethod
    def init_state(self, encoded: Any) -> DecoderState:
        """The decoder state before the first target token (the caller then feeds BOS)."""

    @abc.abstractmethod
    def step(
        self, tokens: Tensor, state: DecoderState, return_attention: bool = False
    ) -> StepOutput:
        """Consume the previous target token of each hypothesis (B,) and score the next one;
        with `return_attention`, also give this step's attention over the source (B, S)."""

    @abc.abstractmethod
    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        return_attention: bool = False,
        positions: Tensor | None = None,
    ) -> ModelOutput:
        """Teacher-forced scores for every target position; `tgt_in` is BOS + target (B, T).
        With `positions` (B, T) bool, logits are (N, V) for its N True positions in row-major
        order only: training scores no padding (the vocabulary projection is its largest cost).

        Must equal running `encode`, `init_state` and `step` over `tgt_in` (to float tolerance);
        it exists so training can batch work over all T positions at once.
        """


def check_source(src: Tensor, src_lengths: Tensor) -> None:
    """Source ids (B, S) with lengths (B,), as `encode` takes them; a ValueError otherwise."""
    if src.dim() != 2 or src_lengths.shape != (src.size(0),):
        raise ValueError(
            f"expected src (B, S) and src_lengths (B,), got {tuple(src.shape)} and "
            f"{tuple(src_lengths.shape)}"
        )


def check_source_lengths(src: Tensor, cpu_lengths: Tensor) -> None:
    """Lengths in [1, S]. Reading them costs a device sync unless they are on the CPU already,
    so only a model that needs them there (the RNN packs its sequences) checks them."""
    shortest, longest = int(cpu_lengths.min()), int(cpu_lengths.max())
    if not 1 <= shortest <= longest <= src.size(1):
        raise ValueError(
            f"src_lengths must lie in [1, S = {src.size(1)}], got min {shortest} and max {longest}"
        )


def check_target(src: Tensor, tgt_in: Tensor) -> None:
    """Teacher-forcing input (B, T) for the same B sentences as `src`; a ValueError otherwise."""
    if tgt_in.dim() != 2 or tgt_in.size(0) != src.size(0):
        raise ValueError(
            f"expected tgt_in (B, T) with B = {src.size(0)} like src, got {tuple(tgt_in.shape)}"
        )
