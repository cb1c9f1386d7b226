"""`python -m seq2seq.evaluate checkpoint=... data.split=test search.beam_size=5`

Decodes a split with a trained model and writes hypotheses next to the references, plus a
`metrics.json` (BLEU with its sacreBLEU signature, chrF, perplexity, decode time, sentences/s).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from seq2seq.data import prepare_data
from seq2seq.evaluation import write_json, write_lines
from seq2seq.pipeline import load_trained
from seq2seq.training import checkpoint as ckpt
from seq2seq.training import runtime
from seq2seq.training.validation import SearchSettings, Validator

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if cfg.data.split not in SPLITS:
        raise ValueError(f"data.split must be one of {SPLITS}, got {cfg.data.split!r}")
    device = runtime.pick_device(cfg.device)
    runtime.configure_cpu(device, cfg.num_threads)
    model, tokenizer, train_cfg = load_trained(cfg.checkpoint, device)
    data_cfg = train_cfg.data
    if cfg.data.root is not None:
        _move_root(data_cfg, cfg.data.root)
    data = prepare_data(
        data_cfg, train_cfg.tokenizer, cfg.cache_dir, seed=train_cfg.seed, tokenizer=tokenizer
    )
    search = SearchSettings(**cfg.search)
    precision = runtime.resolve_precision("auto", device)
    result = Validator(data, device, precision, search).run(model, cfg.data.split, cfg.progress)

    out_dir = _output_dir(cfg, search)
    split = cfg.data.split
    write_lines(out_dir / f"{split}.src", data.sources(split))
    write_lines(out_dir / f"{split}.ref", data.references(split))
    write_lines(out_dir / f"{split}.hyp", result.hypotheses)
    metrics = {
        "checkpoint": str(ckpt.resolve_checkpoint(cfg.checkpoint, prefer=ckpt.BEST)),
        "split": split,
        "search": OmegaConf.to_container(cfg.search, resolve=True),
        "sentences": len(result.hypotheses),
        **result.metrics,
        "bleu_signature": result.bleu_signature,
    }
    write_json(out_dir / "metrics.json", metrics)
    log.info("wrote %s", out_dir)
    return metrics


def _move_root(data_cfg: DictConfig, root: str) -> None:
    if "root" not in data_cfg:
        raise ValueError(f"data.root was given, but the {data_cfg.name} data set reads no files")
    # the checkpoint's config is resolved, so the source holds its own copy of the root
    data_cfg.root = data_cfg.source.root = root


def _output_dir(cfg: DictConfig, search: SearchSettings) -> Path:
    if cfg.output_dir is not None:
        return Path(cfg.output_dir)
    file = ckpt.resolve_checkpoint(cfg.checkpoint, prefer=ckpt.BEST)
    run_dir = file.parent.parent if file.parent.name == ckpt.CHECKPOINT_DIR else file.parent
    return run_dir / "eval" / f"{cfg.data.split}.beam{search.beam_size}"


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    print(json.dumps(evaluate(cfg), indent=2))


if __name__ == "__main__":
    main()
