"""Attention mechanisms behind one interface: `forward(query, memory, step) -> AttentionOutput`.

Each variant is chosen by `model/attention=<name>` (configs/model/attention/<name>.yaml).
"""

from seq2seq.models.attention.base import (
    Attention,
    AttentionOutput,
    EncoderMemory,
    masked_softmax,
)
from seq2seq.models.attention.content import (
    BahdanauAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
)
from seq2seq.models.attention.local import (
    LocalAttention,
    LuongLocalMAttention,
    LuongLocalPAttention,
)
from seq2seq.models.attention.location import LuongLocationAttention

__all__ = [
    "Attention",
    "AttentionOutput",
    "BahdanauAttention",
    "EncoderMemory",
    "LocalAttention",
    "LuongConcatAttention",
    "LuongDotAttention",
    "LuongGeneralAttention",
    "LuongLocalMAttention",
    "LuongLocalPAttention",
    "LuongLocationAttention",
    "masked_softmax",
]
