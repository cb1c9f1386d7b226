"""Embedding options shared by the models: a joint source/target table and tied output weights."""

from __future__ import annotations

from torch import nn


def make_embeddings(
    *, src_vocab_size: int, tgt_vocab_size: int, embedding_size: int, pad_id: int, share: bool
) -> tuple[nn.Embedding, nn.Embedding]:
    """Source and target embeddings; with `share` one table serves both (joint vocabulary)."""
    if share and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            "model.share_embeddings=true needs one joint vocabulary, but src_vocab_size="
            f"{src_vocab_size} != tgt_vocab_size={tgt_vocab_size} (train a joint tokenizer "
            "or set model.share_embeddings=false)"
        )
    source = nn.Embedding(src_vocab_size, embedding_size, padding_idx=pad_id)
    if share:
        return source, source
    return source, nn.Embedding(tgt_vocab_size, embedding_size, padding_idx=pad_id)


def tie_weights(projection: nn.Linear, embedding: nn.Embedding) -> None:
    """Make the output projection use the target embedding matrix (Press & Wolf, 2017)."""
    if projection.weight.shape != embedding.weight.shape:
        raise ValueError(
            "model.tie_embeddings=true needs the decoder output size to equal the embedding "
            f"size: projection weight {tuple(projection.weight.shape)} vs embedding "
            f"{tuple(embedding.weight.shape)}"
        )
    projection.weight = embedding.weight
