"""The config a continued run trains with: its checkpoint's, with what the command line changes.

A resumed run keeps the settings it was started with, so `trainer.resume=<run dir>` alone
continues it as it was. A setting given on the command line at resume (`optim.lr=1e-5`,
`trainer.max_updates=...`) takes effect and is logged as changed; one that would make the
checkpoint mean something else (the model, tokenizer, data, seed, optimizer or schedule type)
is refused, naming the key. Repeating the run's original overrides changes nothing, so a sweep
command re-run with `trainer.resume=auto` continues each point as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# the checkpoint's weights, vocabulary and batch order mean nothing under other values of these
FIXED = ("seed", "data", "tokenizer", "model", "optim._target_", "scheduler._target_")
# where the same data lies now (a copy moved), not what it is
MOVABLE = ("data.root", "data.source.root")
NOT_SETTINGS = ("trainer.resume",)  # where to resume from is not a setting of the run
_ABSENT = object()


class ResumeConfigError(ValueError):
    """A setting given at resume that a continued run cannot take."""


def continued_config(
    cfg: DictConfig,
    saved: Mapping[str, Any],
    overrides: Sequence[str] | None,
    saved_raw: Mapping[str, Any] | None = None,
) -> DictConfig:
    """The checkpoint's config `saved` (`saved_raw`: the same with its interpolations, if the
    checkpoint has it), with the values of `cfg` that `overrides` (the command line) set, or
    with every value of `cfg` when `overrides` is None (no command line: `cfg` is meant whole)."""
    now = _leaves(OmegaConf.to_container(cfg, resolve=True))
    raws = [_leaves(OmegaConf.to_container(cfg, resolve=False)), _leaves(saved_raw or {})]
    before = _leaves(saved)
    given = None if overrides is None else _override_keys(overrides)
    merged = OmegaConf.create(dict(saved_raw or saved))
    changes = []
    for key in sorted(set(now) | set(before)):
        new, old = now.get(key, _ABSENT), before.get(key, _ABSENT)
        if key in NOT_SETTINGS or new == old or new is _ABSENT:
            continue
        if old is _ABSENT and given is None:
            continue  # a key newer than the checkpoint: its default stands
        if given is not None and not any(_given(key, raw.get(key), given) for raw in raws):
            continue  # a default of this command, not a change the user asked for
        if _is_fixed(key):
            raise ResumeConfigError(
                f"{key} cannot change when resuming a run (it was {_show(old)}, the command "
                f"line makes it {_show(new)}): start a new run to train with it"
            )
        if OmegaConf.select(merged, key) != new:  # an interpolation may already follow
            OmegaConf.update(merged, key, new, force_add=True)
        changes.append(f"{key} {_show(old)} → {_show(new)}")
    merged.trainer.resume = cfg.trainer.resume
    if changes:
        log.info("changed on resume: %s", ", ".join(changes))
    return merged


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping) and node:
        leaves: dict[str, Any] = {}
        for key, value in node.items():
            leaves.update(_leaves(value, f"{prefix}{key}."))
        return leaves
    return {prefix[:-1]: node}


def _override_keys(overrides: Iterable[str]) -> set[str]:
    """Config paths the overrides set: `optim.lr` for optim.lr=..., `model.attention` for the
    group choice model/attention=..."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {o.key_or_group.replace("/", ".") for o in parsed if not o.is_hydra_override()}


def _given(key: str, raw: Any, given: set[str]) -> bool:
    """Whether the command line set `key`: itself, a node above it, or a key its unresolved
    value interpolates (scheduler.total_updates follows trainer.max_updates)."""
    keys = [key, *(_references(raw, key) if isinstance(raw, str) else [])]
    return any(k == g or k.startswith(g + ".") for k in keys for g in given)


def _references(raw: str, key: str) -> list[str]:
    """The keys the interpolations in `raw` (the value of `key`) name, relative ones such as
    data.source.root's `${..root}` made absolute (`data.root`)."""
    references = []
    for reference in re.findall(r"\$\{([^${}:]+)\}", raw):
        dots = len(reference) - len(reference.lstrip("."))
        if dots:  # one dot: the node holding `key`; each more, one node up
            reference = ".".join([*key.split(".")[:-dots], reference[dots:]])
        references.append(reference)
    return references


def _is_fixed(key: str) -> bool:
    return key not in MOVABLE and any(key == f or key.startswith(f + ".") for f in FIXED)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)
