"""Up-front checks of a composed config, so a bad value fails before any data or checkpoint is
read.

Hydra already rejects unknown keys (struct mode); these rules catch known keys with bad values
and name the key in the message. Group-specific checks (data, model) live with their code; the
model's run by building it once with a two-word vocabulary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.runtime import PRECISIONS


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _optional(rule: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or rule(v)


def _positive_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: v in choices


# key -> (rule, what a valid value is)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    "trainer.max_epochs": (_positive_int, "a positive integer"),
    "trainer.max_updates": (_optional(_positive_int), "a positive integer or null"),
    "trainer.max_minutes": (_optional(_positive_number), "a positive number or null"),
    "trainer.validate_every": (_positive_int, "a positive integer"),
    "trainer.checkpoint_every": (_positive_int, "a positive integer"),
    "trainer.log_every": (_positive_int, "a positive integer"),
    "trainer.keep_last": (_count, "0 or a positive integer"),
    "trainer.keep_best": (_count, "0 or a positive integer"),
    "trainer.patience": (_optional(_positive_int), "a positive integer or null"),
    "trainer.accumulate_grad": (_positive_int, "a positive integer"),
    "trainer.num_threads": (_positive_int, "a positive integer"),
    "trainer.clip_grad_norm": (_optional(_positive_number), "a positive number or null"),
    "trainer.max_nonfinite_updates": (_positive_int, "a positive integer"),
    "trainer.loss_explosion_factor": (
        _optional(lambda v: _positive_number(v) and v > 1),
        "a number above 1 or null",
    ),
    "trainer.label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "trainer.precision": (_one_of(*PRECISIONS), f"one of {PRECISIONS}"),
    "trainer.early_stopping_metric": (_one_of("bleu", "chrf", "loss", "ppl"), "bleu|chrf|loss|ppl"),
    "optim.lr": (_positive_number, "a positive number"),
    "search.beam_size": (_positive_int, "a positive integer"),
    "search.alpha": (lambda v: v >= 0, "a non-negative number"),
    "search.max_len_a": (lambda v: v >= 0, "a non-negative number"),
    "search.max_len_b": (lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    # evaluate and translate
    "num_threads": (_positive_int, "a positive integer"),
    "batch_sentences": (_positive_int, "a positive integer"),
    # train|validation|test, or another split of a file-based data set by its file prefix
    # (evaluate says which splits the data set has)
    "data.split": (
        lambda v: isinstance(v, str) and v.strip() != "" and "/" not in v,
        "a split name (train|validation|test or a file prefix such as test_2017_flickr)",
    ),
}


def validate_config(cfg: DictConfig) -> None:
    """Raise ValueError naming every key of a train config whose value is out of range."""
    problems = check_values(cfg) + _lr_overflow(cfg) + _foreign_keys(cfg, "optim", "scheduler")
    problems += [
        f"{key} must be set (it is ??? in the config), e.g. {key}=<value> on the command line"
        for key in _missing_keys(OmegaConf.to_container(cfg, throw_on_missing=False))
    ]
    if problems:
        raise ValueError("invalid config: " + "; ".join(problems))
    # imported here: the data checks live beside the corpus reader, whose import (the Hugging
    # Face datasets library) translate and evaluate, which share this module, need not pay
    from seq2seq.data.prepare import check_data_config

    check_data_config(cfg.data)
    check_model_config(cfg.model)


def check_values(cfg: DictConfig) -> list[str]:
    """What is wrong with the values of the keys in RULES that `cfg` has (any entry point's)."""
    problems = []
    for key, (rule, expected) in RULES.items():
        # an interpolation of a ??? value resolves to None here; the ??? is reported below
        value = OmegaConf.select(cfg, key, default="<missing>", throw_on_resolution_failure=False)
        if value == "<missing>":
            continue
        try:
            ok = rule(value)
        except TypeError:
            ok = False
        if not ok:
            problems.append(f"{key} must be {expected}, got {value!r}")
    device = str(cfg.get("device", "auto"))
    if not (device in ("auto", "cpu") or device.startswith("cuda")):
        problems.append(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return problems


def validate_entry_config(cfg: DictConfig) -> None:
    """The checks of RULES for any entry point's config, before a checkpoint is read (in
    evaluate and translate; in train at resume, whose full config comes from the checkpoint)."""
    if problems := check_values(cfg) + _lr_overflow(cfg):
        raise ValueError("invalid config: " + "; ".join(problems))


def check_model_config(model_cfg: DictConfig) -> None:
    """Build the model once with a two-word vocabulary, so that its constructors' checks
    (e.g. model.attention.half_width) fail before data is read; the weights are thrown away."""
    try:
        instantiate(model_cfg, src_vocab_size=2, tgt_vocab_size=2, pad_id=0)
    except InstantiationException as err:  # its message wraps the constructor's in Hydra's
        raise ValueError(f"invalid model config: {err.__cause__ or err}") from err


def _foreign_keys(cfg: DictConfig, *groups: str) -> list[str]:
    """Keys of a group that its `_target_` does not take: an experiment's setting for one
    choice of a group (e.g. a warm-up length) meeting another choice from the command line."""
    problems = []
    for group in groups:
        node = cfg.get(group)
        if node is None or "_target_" not in node:
            continue
        parameters = inspect.signature(get_object(node._target_)).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            continue
        problems += [
            f"{group}.{key} is not a setting of {node._target_}: drop it with ~{group}.{key} "
            f"or choose a {group} that takes it"
            for key in node
            if not key.startswith("_") and key not in parameters
        ]
    return problems


def _lr_overflow(cfg: DictConfig) -> list[str]:
    """An lr whose first Adam step, lr / (1 - beta1), overflows float32 (torch would fail
    with "value cannot be converted to type float without overflow")."""
    lr, betas = OmegaConf.select(cfg, "optim.lr"), OmegaConf.select(cfg, "optim.betas")
    if not _positive_number(lr):
        return []
    limit = torch.finfo(torch.float32).max * (1 - betas[0] if betas else 1)
    if lr < limit:
        return []
    return [f"optim.lr={lr:g} overflows float32 in the optimizer's step (at most {limit:.3g})"]


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose value is ??? (a value the config leaves to the user, e.g. an
    experiment's budget that must be measured first)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _missing_keys(v, f"{prefix}{key}.")]
    return [prefix.removesuffix(".")] if node == "???" else []
