"""The recurrent cells both RNN halves are made of, and the shape of their state."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def cast_for_loop(weight: Tensor) -> Tensor:
    """`weight` in the dtype autocast would give it (itself outside autocast), for a step loop.

    Autocast caches its cast of a parameter, but casts a slice or transpose of one (W_ih's
    share of h~_{t-1}, W_c's of h_t) anew at every call: T copies forward and T casts of the
    gradient back. Cast once before the loop instead; the steps' gradients then add up in the
    autocast dtype, as those of a cached parameter do.
    """
    device = weight.device.type
    if not torch.is_autocast_enabled(device):
        return weight
    return weight.to(torch.get_autocast_dtype(device))


def gru_step(gates: Tensor, hidden: Tensor, rnn: nn.GRU) -> Tensor:
    """One step of `rnn` (one nn.GRU layer) from its input side's gates W_ih x + b_ih (B, 3H)
    and the state h (B, H), with nn.GRU's equations:

        r = σ(W_ir x + b_ir + W_hr h + b_hr)    z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    h' = (1 - z) ⊙ n + z ⊙ h

    Taking the gates instead of x lets teacher forcing compute the embeddings' share of them
    for all T steps in one product and the context's share from pre-projected encoder outputs.
    """
    hidden_gates = F.linear(hidden, rnn.weight_hh_l0, rnn.bias_hh_l0)  # (B, 3H)
    size = hidden.size(-1)
    reset, update = torch.sigmoid(gates[:, : 2 * size] + hidden_gates[:, : 2 * size]).chunk(2, -1)
    new = torch.tanh(gates[:, 2 * size :] + reset * hidden_gates[:, 2 * size :])
    return torch.lerp(new, hidden, update)
