"""Inference on prepared batches: `Translator` turns source ids into text with the search
settings given; `Validator` scores a split (token-level loss and perplexity, then decoded BLEU
and chrF). translate, evaluate and the trainer's validation all go through them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from seq2seq import decoding, evaluation, runtime
from seq2seq.data.batch import Batch
from seq2seq.decoding import SearchSettings
from seq2seq.diagnostics import AttentionDiagnostics
from seq2seq.models.interface import Seq2SeqModel


@dataclass
class ValidationResult:
    # loss, ppl, bleu, chrf, decode_seconds, sentences_per_second, attn_* (seq2seq.diagnostics)
    metrics: dict[str, float]
    hypotheses: list[str]
    bleu_signature: str = ""
    attention: list = field(default_factory=list)


class Validator:
    """Scores a split of a prepared data set with a model: perplexity and decoded BLEU/chrF."""

    def __init__(
        self,
        data,
        device: torch.device,
        precision: str,
        search: SearchSettings,
    ) -> None:
        self.data, self.device, self.precision = data, device, precision
        self.translate = Translator(data.tokenizer, device, precision, search)

    def run(self, model: Seq2SeqModel, split: str, progress: bool = False) -> ValidationResult:
        batches = self.data.batches(split)
        was_training = model.training
        model.eval()
        try:
            nll_sum, tokens, diagnostics = self.token_nll(model, batches)
            start = time.perf_counter()
            hypotheses = self.translate(model, batches, progress)
            seconds = time.perf_counter() - start
        finally:
            model.train(was_training)
        references = self.data.references(split)
        bleu = evaluation.bleu(hypotheses, references)
        metrics = {
            "loss": nll_sum / tokens,
            "ppl": evaluation.perplexity(nll_sum, tokens),
            "bleu": bleu.score,
            "chrf": evaluation.chrf(hypotheses, references).score,
            "exact_match": evaluation.exact_match(hypotheses, references),
            "decode_seconds": seconds,
            "sentences_per_second": len(hypotheses) / seconds,
            **diagnostics.result(),
        }
        return ValidationResult(metrics, hypotheses, bleu.signature)

    @torch.inference_mode()
    def token_nll(
        self, model: Seq2SeqModel, batches: list[Batch]
    ) -> tuple[float, int, AttentionDiagnostics]:
        """Summed negative log-likelihood of the target tokens (no label smoothing), their
        count, and the attention diagnostics of the same teacher-forced pass over the
        references (the attention costs little next to the decoding that follows)."""
        total, tokens, diagnostics = 0.0, 0, AttentionDiagnostics()
        for batch in batches:
            batch = batch.to(self.device)
            with runtime.autocast(self.device, self.precision):
                output = model(batch.src, batch.src_lengths, batch.tgt_in, return_attention=True)
            logits = output.logits
            if output.attention is not None:
                diagnostics.add(
                    output.attention, batch.src_lengths, batch.tgt_lengths, output.attention_centers
                )
            total += float(
                F.cross_entropy(
                    logits.float().flatten(0, 1),
                    batch.tgt_out.flatten(),
                    ignore_index=model.pad_id,
                    reduction="sum",
                )
            )
            tokens += batch.num_tgt_tokens
        return total, tokens, diagnostics


class Translator:
    """Turns batches of source ids into detokenized translations, in corpus order."""

    def __init__(self, tokenizer, device: torch.device, precision: str, search: SearchSettings):
        self.tokenizer, self.device, self.precision = tokenizer, device, precision
        self.search = search

    def __call__(self, model: Seq2SeqModel, batches: list[Batch], progress: bool) -> list[str]:
        with runtime.autocast(self.device, self.precision):
            ids = decoding.translate_batches(
                model,
                batches,
                self.search,
                bos_id=self.tokenizer.bos_id,
                eos_id=self.tokenizer.eos_id,
                device=self.device,
                progress=progress,
            )
        return [self.tokenizer.decode_target(seq) for seq in ids]
