"""Translation models: two families behind one step-wise interface.

    interface.py     Seq2SeqModel, DecoderState, StepOutput, ModelOutput, check_source: what
                     search and the trainer see
    embeddings.py    source/target embeddings, their sharing and the output-projection tying,
                     used by both families
    sharing.py       source-side state held once per sentence while search follows K hypotheses
    rnn/             the RNN encoder-decoder (`model=rnn`): model.py, wiring.py (how attention
                     enters the decoder), attention/ (the RNN's score functions), state.py, cells.py
    transformer.py   the Transformer (`model=transformer`), its attention included

Both families take the same option names where they mean the same thing: `share_embeddings`,
`tie_output`, `num_encoder_layers`, `num_decoder_layers`, `dropout`.

Shape letters, in every file of the package (and in seq2seq/decoding.py):

    B   sentences in a batch
    S   source length (padded)
    T   target length (padded), or the target steps a query covers
    t   target tokens decoded so far (incremental decoding)
    V   vocabulary size
    L   layers
    E   RNN embedding size
    H   RNN hidden size (the decoder's state; per direction in the encoder)
    C   RNN encoder output size, also the size of the context c_t (H, or 2H when bidirectional)
    Q   attention query size (the RNN decoder's H)
    A   size of the projected attention keys
    w   local attention's half-width (Luong et al. call it D); W = 2w + 1 window positions
    k   positions top-k attention keeps
    D   Transformer width (d_model), also its embedding size
    h   attention heads; d_k = D / h per head in the Transformer
    P   positions a Transformer embedding can hold (max_positions)
    K   beam size
    N   rows handled as one batch: the B·K hypotheses of a beam search (B·T windows in local
        attention)
    M   sentences whose source side a decoder state holds; g = N / M hypotheses share each row
"""

from seq2seq.models.interface import DecoderState, ModelOutput, Seq2SeqModel, StepOutput

__all__ = ["DecoderState", "ModelOutput", "Seq2SeqModel", "StepOutput"]
