"""How the attention context enters the RNN decoder: Bahdanau's wiring or Luong's.

The wiring is separate from the score so any attention works with either
(`model.decoder.wiring=bahdanau|luong`). Both expose `step` (one target position) and `forward`
(teacher forcing over T positions, equal to T calls of `step`), returning the features that the
model's vocabulary projection turns into logits. Shape letters as in `seq2seq.models`'s table.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from seq2seq.models.rnn.attention import Attention, AttentionOutput, EncoderMemory
from seq2seq.models.rnn.cells import Hidden, make_rnn, top_layer
from seq2seq.models.rnn.state import RNNDecoderState


class DecoderWiring(nn.Module):
    """A recurrent decoder and the way it consumes attention (see the subclasses)."""

    output_size: int

    def __init__(self, *, attention: Attention, dropout: float) -> None:
        super().__init__()
        self.attention = attention
        self.dropout = nn.Dropout(dropout)

    def initial_feed(self, hidden: Hidden) -> Tensor | None:
        """What the first step is fed besides BOS (None: nothing)."""
        return None

    def step(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, RNNDecoderState, AttentionOutput]:
        """One target position: embedded (B, 1, E) -> features (B, 1, output_size)."""
        raise NotImplementedError

    def forward(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, list[AttentionOutput]]:
        """Teacher forcing: embedded (B, T, E) -> features (B, T, output_size) and the attention
        outputs, which together cover the T positions in order."""
        raise NotImplementedError


class BahdanauWiring(DecoderWiring):
    """The decoder of Bahdanau et al. (2015), appendix A.2:

        c_t = attention(s_{t-1}, h)                       (score uses the *previous* state)
        s_t = RNN(s_{t-1}, [E y_{t-1}; c_t])              (context enters the cell)
        t_t = tanh(W_o [s_t; c_t; E y_{t-1}])             (deep output, size H)

    t_t then goes through dropout to the vocabulary projection. The paper's maxout layer is
    replaced by tanh (as in JoeyNMT and Nematus), which keeps the output size at H and allows
    tying the output projection to the embeddings when E = H. With stacked layers the top
    layer's state is the query and c_t enters the bottom layer. The cell always receives c_t, so
    `input_feeding` only exists to reject `false` loudly.
    """

    def __init__(
        self,
        *,
        attention: Attention,
        cell: str,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        input_feeding: bool = True,
    ) -> None:
        if not input_feeding:
            raise ValueError(
                "model.decoder.input_feeding=false is a Luong-wiring option; the Bahdanau wiring "
                "always feeds c_t into the cell (set model.decoder.wiring=luong)"
            )
        super().__init__(attention=attention, dropout=dropout)
        key_size = attention.key_size
        self.rnn = make_rnn(
            cell=cell,
            input_size=embedding_size + key_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.deep_output = nn.Linear(hidden_size + key_size + embedding_size, hidden_size)  # W_o
        self.output_size = hidden_size

    def _advance(
        self,
        embedded: Tensor,
        hidden: Hidden,
        memory: EncoderMemory,
        step: int,
        attention_state: Tensor | None,
    ) -> tuple[Tensor, Hidden, AttentionOutput]:
        attended = self.attention(top_layer(hidden), memory, step, attention_state)
        states, hidden = self.rnn(torch.cat([embedded, attended.context], dim=-1), hidden)
        return states, hidden, attended  # states: (B, 1, H) = s_t

    def _readout(self, states: Tensor, contexts: Tensor, embedded: Tensor) -> Tensor:
        features = torch.cat([states, contexts, embedded], dim=-1)  # (B, T, H + C + E)
        return self.dropout(torch.tanh(self.deep_output(features)))

    def step(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, RNNDecoderState, AttentionOutput]:
        states, hidden, attended = self._advance(
            embedded, state.hidden, state.memory, state.step, state.attention
        )
        output = self._readout(states, attended.context, embedded)
        new_state = replace(state, hidden=hidden, step=state.step + 1, attention=attended.state)
        return output, new_state, attended

    def forward(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, list[AttentionOutput]]:
        hidden, attention_state, states, attended = state.hidden, state.attention, [], []
        # one split, not T slices: each slice's backward would add a zero-padded (B, T, E) copy
        for t, y_t in enumerate(embedded.split(1, dim=1)):
            s_t, hidden, a_t = self._advance(
                y_t, hidden, state.memory, state.step + t, attention_state
            )
            attention_state = a_t.state
            states.append(s_t)
            attended.append(a_t)
        contexts = torch.cat([a.context for a in attended], dim=1)  # (B, T, C)
        # the deep output does not feed back, so it runs once over all T positions
        return self._readout(torch.cat(states, dim=1), contexts, embedded), attended


class LuongWiring(DecoderWiring):
    """The decoder of Luong et al. (2015), section 3 and 3.3:

        h_t = RNN(h_{t-1}, [E y_{t-1}; h~_{t-1}])         (input feeding; [E y_{t-1}] without)
        c_t = attention(h_t, h̄)                           (score uses the *current* top state)
        h~_t = tanh(W_c [c_t; h_t])                       (attentional state, to the softmax)

    Dropout is applied to h~_t, and the dropped h~_t is what gets fed back (as in OpenNMT).
    Without input feeding nothing flows back from attention, so teacher forcing runs the cell
    over the whole sequence in one (cuDNN) call and attends for all T positions at once.
    """

    def __init__(
        self,
        *,
        attention: Attention,
        cell: str,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        input_feeding: bool = True,
    ) -> None:
        super().__init__(attention=attention, dropout=dropout)
        self.input_feeding = input_feeding
        self.rnn = make_rnn(
            cell=cell,
            input_size=embedding_size + (hidden_size if input_feeding else 0),
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.combine_layer = nn.Linear(attention.key_size + hidden_size, hidden_size, bias=False)
        self.output_size = hidden_size

    def initial_feed(self, hidden: Hidden) -> Tensor | None:
        return torch.zeros_like(top_layer(hidden)) if self.input_feeding else None  # h~_0 = 0

    def _attentional(
        self, states: Tensor, memory: EncoderMemory, step: int, attention_state: Tensor | None
    ) -> tuple[Tensor, AttentionOutput]:
        attended = self.attention(states, memory, step, attention_state)
        h_tilde = torch.tanh(self.combine_layer(torch.cat([attended.context, states], dim=-1)))
        return self.dropout(h_tilde), attended  # (B, T, H)

    def _advance(
        self,
        embedded: Tensor,
        hidden: Hidden,
        feed: Tensor | None,
        memory: EncoderMemory,
        step: int,
        attention_state: Tensor | None,
    ) -> tuple[Tensor, Hidden, AttentionOutput]:
        inputs = embedded if feed is None else torch.cat([embedded, feed], dim=-1)
        states, hidden = self.rnn(inputs, hidden)
        h_tilde, attended = self._attentional(states, memory, step, attention_state)
        return h_tilde, hidden, attended

    def step(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, RNNDecoderState, AttentionOutput]:
        h_tilde, hidden, attended = self._advance(
            embedded, state.hidden, state.feed, state.memory, state.step, state.attention
        )
        feed = h_tilde if self.input_feeding else None
        new_state = replace(
            state, hidden=hidden, feed=feed, step=state.step + 1, attention=attended.state
        )
        return h_tilde, new_state, attended

    def forward(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, list[AttentionOutput]]:
        if not self.input_feeding:
            states, _ = self.rnn(embedded, state.hidden)  # (B, T, H), all steps at once
            h_tilde, attended = self._attentional(states, state.memory, state.step, state.attention)
            return h_tilde, [attended]
        feed, hidden, attention_state = state.feed, state.hidden, state.attention
        outputs, attended = [], []
        for t, y_t in enumerate(embedded.split(1, dim=1)):  # one split: see BahdanauWiring
            feed, hidden, a_t = self._advance(
                y_t, hidden, feed, state.memory, state.step + t, attention_state
            )
            attention_state = a_t.state
            outputs.append(feed)
            attended.append(a_t)
        return torch.cat(outputs, dim=1), attended


WIRINGS: dict[str, type[DecoderWiring]] = {"bahdanau": BahdanauWiring, "luong": LuongWiring}


def make_wiring(
    *,
    attention: Attention,
    cell: str,
    embedding_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    wiring: str = "bahdanau",
    input_feeding: bool = True,
) -> DecoderWiring:
    """The decoder named by `model.decoder.wiring`, around a built attention module."""
    if wiring not in WIRINGS:
        raise ValueError(f"model.decoder.wiring must be one of {sorted(WIRINGS)}, got {wiring!r}")
    return WIRINGS[wiring](
        attention=attention,
        cell=cell,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        input_feeding=input_feeding,
    )
