"""Embedding options both model families take: one source/target table (`share_embeddings`) and an
output projection tied to the target embeddings (`tie_output`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

Embedding = TypeVar("Embedding", bound=nn.Module)


def embedding_pair(
    make: Callable[[int], Embedding],
    *,
    src_vocab_size: int,
    tgt_vocab_size: int,
    share: bool,
) -> tuple[Embedding, Embedding]:
    """Source and target embeddings, each `make(vocab_size)`; with `share` one module serves
    both (a joint vocabulary)."""
    if share and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            "model.share_embeddings=true needs one joint vocabulary, but src_vocab_size="
            f"{src_vocab_size} != tgt_vocab_size={tgt_vocab_size} (train a joint tokenizer "
            "or set model.share_embeddings=false)"
        )
    source = make(src_vocab_size)
    return source, source if share else make(tgt_vocab_size)


def make_embeddings(
    *, src_vocab_size: int, tgt_vocab_size: int, embedding_size: int, pad_id: int, share: bool
) -> tuple[nn.Embedding, nn.Embedding]:
    """Plain source and target embedding tables (E columns), shared with `share`."""

    def table(vocab_size: int) -> nn.Embedding:
        return nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)

    return embedding_pair(
        table, src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, share=share
    )


def tie_output_weights(projection: nn.Linear, embedding: nn.Embedding) -> None:
    """Make the output projection use the target embedding matrix (Press & Wolf, 2017)."""
    if projection.weight.shape != embedding.weight.shape:
        raise ValueError(
            "model.tie_output=true needs the decoder output size to equal the embedding "
            f"size: projection weight {tuple(projection.weight.shape)} vs embedding "
            f"{tuple(embedding.weight.shape)}"
        )
    projection.weight = embedding.weight
