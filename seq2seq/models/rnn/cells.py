"""The recurrent cells both RNN halves are made of, and the shape of their state."""

from __future__ import annotations

from torch import Tensor, nn

# nn.GRU state (L, B, H), or nn.LSTM's (h, c) pair of them
Hidden = Tensor | tuple[Tensor, Tensor]

CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


def make_rnn(
    *,
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool = False,
) -> nn.RNNBase:
    """A batch-first GRU or LSTM (`model.cell`), with dropout between its layers."""
    if cell not in CELLS:
        raise ValueError(f"model.cell must be one of {sorted(CELLS)}, got {cell!r}")
    return CELLS[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,  # nn.RNNBase warns about it on one layer
        bidirectional=bidirectional,
    )


def top_layer(hidden: Hidden) -> Tensor:
    """The top layer's state (B, 1, H) of a GRU or LSTM state, as an attention query."""
    states = hidden[0] if isinstance(hidden, tuple) else hidden
    return states[-1].unsqueeze(1)


def select_hidden(hidden: Hidden, indices: Tensor) -> Hidden:
    if isinstance(hidden, tuple):
        return tuple(h.index_select(1, indices) for h in hidden)
    return hidden.index_select(1, indices)
