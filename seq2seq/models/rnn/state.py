"""The RNN decoder's state between target steps (what beam search reorders)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from seq2seq.models.interface import DecoderState
from seq2seq.models.rnn.attention import EncoderMemory
from seq2seq.models.rnn.cells import Hidden, select_hidden
from seq2seq.models.sharing import keeps_every_row, shared_rows


@dataclass(frozen=True)
class RNNDecoderState(DecoderState):
    """The decoder's recurrent state plus the encoder memory it attends over.

    The memory's rows come in runs of `group` copies of one sentence's (beam search's K
    hypotheses), so a reorder that keeps hypotheses within their sentences leaves the memory as
    it is; it is copied only when sentences leave the batch (seq2seq/models/sharing.py).
    """

    hidden: Hidden  # (L, B, H) per layer; (h, c) for an LSTM
    memory: EncoderMemory
    feed: Tensor | None = None  # (B, 1, H) h~_{t-1}, Luong input feeding only
    step: int = 0  # target position t of the next token (local-m's p_t)
    group: int = 1  # consecutive rows that hold the same sentence's memory
    # the attention's own state, per hypothesis (coverage (B, S)); None for most variants
    attention: Tensor | None = None

    def reorder(self, indices: Tensor) -> RNNDecoderState:
        sentences, group = shared_rows(indices // self.group)
        unchanged = group == self.group and keeps_every_row(
            sentences, self.memory.mask.size(0) // self.group
        )
        return RNNDecoderState(
            hidden=select_hidden(self.hidden, indices),
            memory=self.memory if unchanged else self.memory.reorder(indices),
            feed=None if self.feed is None else self.feed.index_select(0, indices),
            step=self.step,
            group=group,
            attention=None if self.attention is None else self.attention.index_select(0, indices),
        )
