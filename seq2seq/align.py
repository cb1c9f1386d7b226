"""`python -m seq2seq.align checkpoint=<run> alignment=rwth_de_en`

Teacher-forces the gold set's reference translations through a trained model, turns its
attention into word links (`seq2seq.alignment`) and scores them against the human links. Writes
into `<run>/eval/align.<set>/`: `metrics.json` (AER, precision, recall of the model, of a
diagonal baseline and of eflomal when installed; the `attn_*` diagnostics on these pairs; for
models with attention heads, the AER of every decoder layer), the links in Pharaoh format
(`model.align`, `diagonal.align`, `eflomal.align`), `examples.json` and `alignment.png` (word
attention with the gold links).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq import alignment, cli, plots, runtime
from seq2seq import checkpoint as ckpt
from seq2seq.data.alignment import GoldPair, Link
from seq2seq.data.batching import collate
from seq2seq.diagnostics import AttentionDiagnostics
from seq2seq.evaluation import write_json
from seq2seq.models.interface import Seq2SeqModel
from seq2seq.pipeline import load_trained
from seq2seq.references import eflomal_links

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extraction:
    """How attention becomes links: the `extract` keys of configs/align.yaml."""

    rule: str = "argmax"
    threshold: float = 0.5
    shift: int = 0
    layer: int | None = None
    head: int | None = None

    def __post_init__(self) -> None:
        if self.rule not in alignment.EXTRACTIONS:
            raise ValueError(
                f"extract.rule must be one of {alignment.EXTRACTIONS}, got {self.rule!r}"
            )
        if self.shift not in (0, 1):
            raise ValueError(f"extract.shift must be 0 or 1, got {self.shift!r}")


@dataclass(frozen=True)
class EncodedPair:
    source: alignment.WordPieces
    target: alignment.WordPieces


def align(cfg: DictConfig) -> dict[str, Any]:
    device = runtime.pick_device(cfg.device)
    runtime.configure_cpu(device, cfg.num_threads)
    model, tokenizer, train_cfg = load_trained(cfg.checkpoint, device)
    gold_set = instantiate(cfg.alignment)
    check_direction(train_cfg, gold_set.src_lang, gold_set.tgt_lang, cfg.alignment.name)
    extraction = Extraction(**cfg.extract)
    gold = gold_set.load(Path(cfg.cache_dir))
    log.info("aligning %d gold pairs of %s with %s", len(gold), gold_set.name, cfg.checkpoint)
    encoded = [
        EncodedPair(
            alignment.encode_words(tokenizer.encode_sources, pair.source),
            alignment.encode_words(tokenizer.encode_targets, pair.target),
        )
        for pair in gold
    ]
    weights = attention_matrices(model, encoded, device, cfg.batch_size, extraction)
    words, links = extract(weights, encoded, gold, extraction)
    out_dir = _output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {
        "checkpoint": str(ckpt.resolve_checkpoint(cfg.checkpoint, prefer=ckpt.BEST)),
        "alignment": gold_set.name,
        "pairs": len(gold),
        "extract": OmegaConf.to_container(cfg.extract, resolve=True),
        "model": alignment.alignment_scores(links, gold),
        # the validation's attn_* on these sentences: how the domain changes the attention
        "diagnostics": gold_diagnostics(weights),
        "references": references(cfg, train_cfg, gold, out_dir),
    }
    if _has_heads(model):
        metrics["layers"] = layer_sweep(model, encoded, gold, device, cfg.batch_size, extraction)
    alignment.write_pharaoh(out_dir / "model.align", links)
    write_examples(out_dir, words, gold, cfg.examples)
    write_json(out_dir / "metrics.json", metrics)
    log.info("wrote %s", out_dir)
    return metrics


def check_direction(train_cfg: DictConfig, src_lang: str, tgt_lang: str, name: str) -> None:
    """The gold set's source side must be the model's source side."""
    data = train_cfg.data
    model_pair = (data.get("src_lang"), data.get("tgt_lang"))
    if model_pair != (src_lang, tgt_lang):
        raise ValueError(
            f"alignment={name} aligns {src_lang}→{tgt_lang}, but the checkpoint's model "
            f"translates {model_pair[0]}→{model_pair[1]} (data.src_lang/tgt_lang); pick the "
            "gold set of the model's direction"
        )


@torch.inference_mode()
def attention_matrices(
    model: Seq2SeqModel,
    encoded: list[EncodedPair],
    device: torch.device,
    batch_size: int,
    extraction: Extraction,
) -> list[np.ndarray]:
    """Each pair's teacher-forced attention (T, S) over its pieces, EOS last on both sides."""
    source = [pair.source.ids for pair in encoded]
    target = [pair.target.ids for pair in encoded]
    matrices: list[np.ndarray] = []
    for start in range(0, len(encoded), batch_size):
        rows = np.arange(start, min(start + batch_size, len(encoded)))
        batch = collate(rows, source, target).to(device)
        weights = batch_attention(model, batch, extraction)  # (B, T, S)
        for b in range(len(rows)):
            matrices.append(
                weights[b, : int(batch.tgt_lengths[b]), : int(batch.src_lengths[b])]
                .float()
                .cpu()
                .numpy()
            )
    return matrices


def batch_attention(model: Seq2SeqModel, batch, extraction: Extraction) -> torch.Tensor:
    """(B, T, S): the model's attention, or for a chosen layer/head of a model with heads the
    cross-attention of that layer, averaged over heads unless one head is chosen."""
    if extraction.layer is None and extraction.head is None:
        output = model(batch.src, batch.src_lengths, batch.tgt_in, return_attention=True)
        if output.attention is None:
            raise ValueError(f"{type(model).__name__} returns no attention to align with")
        return output.attention
    if not _has_heads(model):
        raise ValueError(
            f"extract.layer/extract.head: {type(model).__name__} has no attention heads; "
            "leave them null"
        )
    heads = model.cross_attention_heads(
        batch.src, batch.src_lengths, batch.tgt_in, extraction.layer
    )  # (B, h, T, S)
    if extraction.head is None:
        return heads.mean(dim=1)
    if not 0 <= extraction.head < heads.size(1):
        raise ValueError(
            f"extract.head must lie in [0, {heads.size(1) - 1}], got {extraction.head}"
        )
    return heads[:, extraction.head]


def gold_diagnostics(weights: list[np.ndarray]) -> dict[str, float]:
    diagnostics = AttentionDiagnostics()
    for w in weights:
        target, source = w.shape
        diagnostics.add(torch.from_numpy(w)[None], torch.tensor([source]), torch.tensor([target]))
    return diagnostics.result()


def extract(
    weights: list[np.ndarray],
    encoded: list[EncodedPair],
    gold: list[GoldPair],
    extraction: Extraction,
) -> tuple[list[np.ndarray], list[set[Link]]]:
    """Each pair's word attention (J, I) and the links extracted from it."""
    words = [
        alignment.word_attention(
            w, pair.source, pair.target, len(g.source), len(g.target), extraction.shift
        )
        for w, pair, g in zip(weights, encoded, gold)
    ]
    links = [alignment.extract_links(w, extraction.rule, extraction.threshold) for w in words]
    return words, links


def layer_sweep(
    model: Seq2SeqModel,
    encoded: list[EncodedPair],
    gold: list[GoldPair],
    device: torch.device,
    batch_size: int,
    extraction: Extraction,
) -> dict[str, float]:
    """AER of every decoder layer's head-averaged cross-attention, with this extraction."""
    aers = {}
    for layer in range(model.attention_layers):
        at_layer = Extraction(extraction.rule, extraction.threshold, extraction.shift, layer)
        weights = attention_matrices(model, encoded, device, batch_size, at_layer)
        _, links = extract(weights, encoded, gold, at_layer)
        aers[str(layer)] = alignment.alignment_scores(links, gold)["aer"]
    return aers


def references(
    cfg: DictConfig, train_cfg: DictConfig, gold: list[GoldPair], out_dir: Path
) -> dict[str, Any]:
    """The diagonal baseline and eflomal on the same pairs (eflomal "skipped" when absent)."""
    diagonal = [alignment.diagonal_links(len(p.source), len(p.target)) for p in gold]
    alignment.write_pharaoh(out_dir / "diagonal.align", diagonal)
    result: dict[str, Any] = {"diagonal": alignment.alignment_scores(diagonal, gold)}
    if not cfg.eflomal:
        result["eflomal"] = "skipped: eflomal=false"
        return result
    links = eflomal_links(train_cfg.data, gold, Path(cfg.cache_dir))
    if isinstance(links, str):
        result["eflomal"] = links
        return result
    alignment.write_pharaoh(out_dir / "eflomal.align", links)
    result["eflomal"] = alignment.alignment_scores(links, gold)
    return result


def write_examples(
    out_dir: Path, words: list[np.ndarray], gold: list[GoldPair], count: int
) -> None:
    """examples.json (the first `count` pairs' word attention and gold links, which
    `seq2seq.compare --alignment` draws) and alignment.png."""
    examples = [
        {
            "source": pair.source,
            "target": pair.target,
            "weights": np.round(w, 4).tolist(),
            "sure": sorted(pair.sure),
            "possible": sorted(pair.possible),
        }
        for w, pair in zip(words[:count], gold[:count])
    ]
    write_json(out_dir / "examples.json", {"examples": examples})
    if examples:
        panels = [(f"pair {i + 1}", example) for i, example in enumerate(examples)]
        plots.save(plots.attention_grid(panels, columns=2), out_dir / "alignment.png")


def _has_heads(model: Seq2SeqModel) -> bool:
    return callable(getattr(model, "cross_attention_heads", None))


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.output_dir is not None:
        return Path(cfg.output_dir)
    return ckpt.run_directory(cfg.checkpoint) / "eval" / f"align.{cfg.alignment.name}"


cli.share_help_repository()  # --help lists the config groups from one repository copy


@hydra.main(config_path="../configs", config_name="align", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        metrics = align(cfg)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
