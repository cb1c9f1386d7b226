"""How the attention context enters the RNN decoder: Bahdanau's wiring or Luong's.

The wiring is separate from the score so any attention works with either
(`model.decoder.wiring=bahdanau|luong`). Both expose `step` (one target position) and `forward`
(teacher forcing over T positions, equal to T calls of `step`), returning the features that the
model's vocabulary projection turns into logits. Shape letters as in `seq2seq.models`'s table.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.models.dropout import Dropout
from seq2seq.models.rnn.attention import Attention, AttentionOutput, EncoderMemory
from seq2seq.models.rnn.cells import Hidden, cast_for_loop, gru_step, make_rnn, top_layer
from seq2seq.models.rnn.state import RNNDecoderState


def joined(outputs: list[AttentionOutput], values: Tensor) -> AttentionOutput:
    """The attention outputs of consecutive steps as one covering them all, with its contexts
    (B, T, K) computed over `values` (B, S, K) in one product."""
    weights = torch.cat([o.weights for o in outputs], dim=1)
    window = None if outputs[0].window is None else torch.cat([o.window for o in outputs], 1)
    center = None if outputs[0].center is None else torch.cat([o.center for o in outputs], 1)
    output = AttentionOutput(values, weights, window, outputs[-1].state, center)
    return replace(output, context=torch.bmm(output.dense_weights(values.size(1)), values))


class DecoderWiring(nn.Module):
    """A recurrent decoder and the way it consumes attention (see the subclasses)."""

    output_size: int
    rnn: nn.RNNBase

    def __init__(self, *, attention: Attention, dropout: float) -> None:
        super().__init__()
        self.attention = attention
        self.dropout = Dropout(dropout)
        self.fused = True  # teacher forcing may take the fused path (tests switch it off)

    def _fusable(self) -> bool:
        """Whether teacher forcing can run the fused loop: one GRU layer (its gates computed
        by `gru_step`) and an attention whose context a linear map can be moved into."""
        return (
            self.fused
            and isinstance(self.rnn, nn.GRU)
            and self.rnn.num_layers == 1
            and self.attention.context_is_weighted_values
        )

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
        if self._fusable():
            return self._fused_forward(embedded, state)
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

    def _fused_forward(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, list[AttentionOutput]]:
        """`forward` with the GRU's input product W_ih [E y_{t-1}; c_t] split in two: the
        embeddings' share for all T steps in one product, and the context's share as the
        attention weights times the encoder outputs projected once (W_ic h_j, (B, S, 3H)):
        W_ic c_t = Σ_j a_tj W_ic h_j. The true contexts, for the deep output, are one product
        after the loop."""
        weight, size = self.rnn.weight_ih_l0, embedded.size(-1)
        gates = F.linear(embedded, weight[:, :size], self.rnn.bias_ih_l0)  # (B, T, 3H)
        projected = replace(state.memory, values=F.linear(state.memory.values, weight[:, size:]))
        hidden, attention_state, states, attended = state.hidden[0], state.attention, [], []
        for t, gates_t in enumerate(gates.unbind(1)):
            a_t = self.attention(hidden.unsqueeze(1), projected, state.step + t, attention_state)
            hidden = gru_step(gates_t + a_t.context.squeeze(1), hidden, self.rnn)  # s_t
            attention_state = a_t.state
            states.append(hidden)
            attended.append(a_t)
        attention = joined(attended, state.memory.values)
        return self._readout(torch.stack(states, 1), attention.context, embedded), [attention]


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
        if self._fusable():
            return self._fused_forward(embedded, state)
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

    def _fused_forward(
        self, embedded: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, list[AttentionOutput]]:
        """`forward` with input feeding, its products split as in BahdanauWiring's: the
        embeddings' share of the GRU's gates for all T steps in one product, and W_c [c_t; h_t]
        as Σ_s a_t(s) W_cc h̄_s + W_ch h_t with the encoder outputs projected once (B, S, H)."""
        weight, size = self.rnn.weight_ih_l0, embedded.size(-1)
        gates = F.linear(embedded, weight[:, :size], self.rnn.bias_ih_l0)  # (B, T, 3H)
        feed_weight = cast_for_loop(weight[:, size:].t())  # (H, 3H): W_ih's share of h~_{t-1}
        combine, keys = self.combine_layer.weight, self.attention.key_size
        projected = replace(state.memory, values=F.linear(state.memory.values, combine[:, :keys]))
        # W_ch, sliced once (a slice's backward fills zeros) and cast once
        combine_states = cast_for_loop(combine[:, keys:])
        feed, hidden, attention_state = state.feed.squeeze(1), state.hidden[0], state.attention
        outputs, attended = [], []
        for t, gates_t in enumerate(gates.unbind(1)):
            hidden = gru_step(torch.addmm(gates_t, feed, feed_weight), hidden, self.rnn)  # h_t
            query = hidden.unsqueeze(1)  # (B, 1, H)
            a_t = self.attention(query, projected, state.step + t, attention_state)
            h_tilde = self.dropout(torch.tanh(a_t.context + F.linear(query, combine_states)))
            feed, attention_state = h_tilde.squeeze(1), a_t.state
            outputs.append(h_tilde)
            attended.append(a_t)
        return torch.cat(outputs, dim=1), [joined(attended, state.memory.values)]


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
