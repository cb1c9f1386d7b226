"""The RNN encoder-decoder family (`model=rnn`): packed encoder, bridge, attentional decoder.

`model.py` holds the model, `wiring.py` how attention enters the decoder (Bahdanau or Luong),
`attention/` the score functions it can use, `state.py` the decoder state search reorders and
`cells.py` the GRU/LSTM both halves are built from.
"""

from seq2seq.models.rnn.model import Bridge, RNNEncoder, RNNEncoding, RNNSeq2Seq

__all__ = ["Bridge", "RNNEncoder", "RNNEncoding", "RNNSeq2Seq"]
