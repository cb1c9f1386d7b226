"""Attention mechanisms behind one interface: `forward(query, memory, step) -> AttentionOutput`.

Each variant is chosen by `model/attention=<name>` (configs/model/attention/<name>.yaml).
"""

from seq2seq.models.rnn.attention.base import (
    Attention,
    AttentionOutput,
    EncoderMemory,
)
from seq2seq.models.rnn.attention.content import (
    BahdanauAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
)
from seq2seq.models.rnn.attention.coverage import BahdanauCoverageAttention
from seq2seq.models.rnn.attention.local import (
    LocalAttention,
    LuongLocalMAttention,
    LuongLocalPAttention,
)
from seq2seq.models.rnn.attention.location import LuongLocationAttention
from seq2seq.models.rnn.attention.multihead import MultiHeadAttention
from seq2seq.models.rnn.attention.normalizers import NORMALIZERS, masked_normalize, masked_softmax
from seq2seq.models.rnn.attention.topk import LuongTopKAttention

__all__ = [
    "Attention",
    "AttentionOutput",
    "BahdanauAttention",
    "BahdanauCoverageAttention",
    "EncoderMemory",
    "LocalAttention",
    "LuongConcatAttention",
    "LuongDotAttention",
    "LuongGeneralAttention",
    "LuongLocalMAttention",
    "LuongLocalPAttention",
    "LuongLocationAttention",
    "LuongTopKAttention",
    "MultiHeadAttention",
    "NORMALIZERS",
    "masked_normalize",
    "masked_softmax",
]
