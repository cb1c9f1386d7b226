"""A few fixed validation sentences, translated with the attention behind every target token.

The same sentences are shown at every validation (TensorBoard text and heatmaps) and saved for
the best model (`attention.json`), so runs and variants are compared on identical inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from seq2seq import decoding, runtime
from seq2seq.data import PreparedData
from seq2seq.data.batch import Batch
from seq2seq.data.batching import collate
from seq2seq.inference import Translator
from seq2seq.models.interface import Seq2SeqModel

SPLIT = "validation"


@dataclass(frozen=True)
class Example:
    """One translated sentence; `weights[t][s]` is the attention of target token t on source s."""

    sentence: str  # the source sentence
    reference: str
    translation: str
    source: list[str]  # source pieces, EOS last (S)
    target: list[str]  # translation pieces, EOS last (T)
    weights: list[list[float]]  # (T, S)
    heads: list[list[list[float]]] | None = None  # (h, T, S), models with attention heads only

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class AttentionExamples:
    """Translates the first `count` validation sentences greedily, then reads the attention of
    that very translation from the teacher-forced `forward(..., return_attention=True)`.

    Teacher forcing on the model's own output equals step-wise decoding (the model interface
    promises it), and it works for every model without asking decoding to keep attention.
    With `heads`, models that expose `cross_attention_heads` (the Transformer) also give one
    matrix per head of the layer they plot.
    """

    def __init__(
        self, data: PreparedData, translator: Translator, count: int = 3, heads: bool = False
    ) -> None:
        if not (isinstance(count, int) and count >= 0):
            raise ValueError(f"logger.examples must be a non-negative integer, got {count!r}")
        rows = np.arange(min(count, len(data.references(SPLIT))))
        encoded = data.encoded[SPLIT]
        self.batch: Batch = collate(rows, encoded.source, encoded.target)  # in corpus order
        self.sentences = data.sources(SPLIT)[: len(rows)]
        self.references = data.references(SPLIT)[: len(rows)]
        self.translator, self.heads = translator, heads

    def __len__(self) -> int:
        return len(self.references)

    @torch.inference_mode()
    def __call__(self, model: Seq2SeqModel) -> list[Example]:
        if len(self) == 0:
            return []
        was_training = model.training
        model.eval()
        try:
            batch = self.batch.to(self.translator.device)
            tokens = self._translate(model, batch)
            tgt_in = _bos_prefixed(tokens, self.translator.tokenizer, batch.src.device)
            with runtime.autocast(self.translator.device, self.translator.precision):
                output = model(batch.src, batch.src_lengths, tgt_in, return_attention=True)
                heads = self._head_weights(model, batch, tgt_in)
        finally:
            model.train(was_training)
        if output.attention is None:
            raise ValueError(f"{type(model).__name__}.forward(return_attention=True) gave None")
        return [
            self._example(i, batch, tokens[i], output.attention[i], heads)
            for i in range(len(tokens))
        ]

    def _translate(self, model: Seq2SeqModel, batch: Batch) -> list[list[int]]:
        search, tokenizer = self.translator.search, self.translator.tokenizer
        with runtime.autocast(self.translator.device, self.translator.precision):
            nbest = decoding.search(
                model,
                batch.src,
                batch.src_lengths,
                replace(search, beam_size=1),
                bos_id=tokenizer.bos_id,
                eos_id=tokenizer.eos_id,
            )
        return [hyps[0].tokens for hyps in nbest]

    def _head_weights(self, model: Seq2SeqModel, batch: Batch, tgt_in: torch.Tensor):
        per_head = getattr(model, "cross_attention_heads", None)
        if not self.heads or per_head is None:
            return None
        return per_head(batch.src, batch.src_lengths, tgt_in)  # (B, h, T, S)

    def _example(
        self,
        i: int,
        batch: Batch,
        tokens: list[int],
        weights: torch.Tensor,
        heads: torch.Tensor | None,
    ) -> Example:
        tokenizer = self.translator.tokenizer
        source_len, target_len = int(batch.src_lengths[i]), len(tokens) + 1  # both with EOS
        return Example(
            sentence=self.sentences[i],
            reference=self.references[i],
            translation=tokenizer.decode_target(tokens),
            source=tokenizer.source_pieces(batch.src[i, :source_len].tolist()),
            target=tokenizer.target_pieces([*tokens, tokenizer.eos_id]),
            weights=_matrix(weights[:target_len, :source_len]),
            heads=None if heads is None else _matrix(heads[i, :, :target_len, :source_len]),
        )


def _bos_prefixed(tokens: list[list[int]], tokenizer: Any, device: torch.device) -> torch.Tensor:
    """(B, T) BOS + tokens, right-padded: padding follows every real position, so a decoder,
    being causal, gives each row's first len + 1 positions exactly as without it."""
    width = 1 + max(len(t) for t in tokens)
    rows = [[tokenizer.bos_id, *t] + [tokenizer.pad_id] * (width - 1 - len(t)) for t in tokens]
    return torch.tensor(rows, dtype=torch.long, device=device)


def _matrix(weights: torch.Tensor) -> list:
    return np.round(weights.float().cpu().numpy(), 4).tolist()
