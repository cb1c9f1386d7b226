"""Glue shared by the command-line entry points: build a model and its trainer, load a model
from a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq import checkpoint as ckpt
from seq2seq.data import Tokenizer
from seq2seq.models.interface import Seq2SeqModel

log = logging.getLogger(__name__)


def build_model(model_cfg: DictConfig, tokenizer: Tokenizer) -> Seq2SeqModel:
    """Instantiate `model_cfg`, completing it with what only the tokenizer knows."""
    return instantiate(
        model_cfg,
        src_vocab_size=tokenizer.src_vocab_size,
        tgt_vocab_size=tokenizer.tgt_vocab_size,
        pad_id=tokenizer.pad_id,
    )


def build_trainer(cfg: DictConfig, model: Seq2SeqModel, **parts: Any) -> Any:
    """`cfg.optim` over the model's parameters, `cfg.scheduler` over that, and the
    `cfg.trainer` Trainer around them; `parts` are its other arguments (data, run_dir,
    validator, device, logger, ...)."""
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    return instantiate(cfg.trainer)(model=model, optimizer=optimizer, scheduler=scheduler, **parts)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_extras(cfg: DictConfig, tokenizer: Tokenizer) -> dict[str, Any]:
    """What every checkpoint carries besides training state, so it is usable on its own."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        # with its interpolations, so that a key changed on resume carries those that follow it
        "config_raw": OmegaConf.to_container(cfg, resolve=False),
        "tokenizer": tokenizer.to_bytes(),
    }


def load_trained(
    checkpoint: str | Path, device: torch.device
) -> tuple[Seq2SeqModel, Tokenizer, DictConfig]:
    """A model in eval mode, its tokenizer and its training config, from a checkpoint file or a
    run directory (whose best checkpoint is preferred)."""
    payload = ckpt.load_checkpoint(checkpoint, prefer=ckpt.BEST, mmap=True)
    cfg = OmegaConf.create(payload["config"])
    tokenizer = Tokenizer.from_bytes(payload["tokenizer"])
    model = build_model(cfg.model, tokenizer)
    model.load_state_dict(payload["model"])
    log.info("loaded %s (update %d)", payload["path"], payload["progress"]["update"])
    return model.to(device).eval(), tokenizer, cfg
