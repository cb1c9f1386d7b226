"""The `variant` config group: one sweep point per model a comparison trains, made from the files
of configs/model/attention/ (an RNN with that attention) and the Transformer.

No file lists the variants: `register` stores one node per attention file in Hydra's config
store before Hydra composes, so a new file in configs/model/attention/ is a variant of
`experiment=compare_attention` and `experiment=attention_study` (whose sweeps glob the group),
of `variant=<name>` and of the tests that list `names()`, with no other edit.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
TRANSFORMER = "transformer"


def attention_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The RNN attention variants: the files of configs/model/attention/, sorted."""
    return sorted(p.stem for p in (config_dir / "model" / "attention").glob("*.yaml"))


def names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Every variant: the RNN attention variants, then the Transformer."""
    return [*attention_names(config_dir), TRANSFORMER]


def register(config_dir: Path = CONFIG_DIR) -> None:
    """Store the `variant` group's nodes: `variant=<attention file>` is `model=rnn
    model/attention=<file>`, `variant=transformer` is `model=transformer`; either takes the size
    an experiment gives its family (configs/experiment/size/<experiment>_<family>.yaml)."""
    store = ConfigStore.instance()
    for name in attention_names(config_dir):
        models = {"override /model": "rnn", "override /model/attention": name}
        store.store(group="variant", name=name, node=_variant("rnn", models), package="_global_")
    models = {"override /model": TRANSFORMER}
    node = _variant(TRANSFORMER, models)
    store.store(group="variant", name=TRANSFORMER, node=node, package="_global_")


def _variant(family: str, models: dict[str, str]) -> dict:
    size = {"optional /experiment/size@model": f"${{oc.select:experiment,none}}_{family}"}
    return {"defaults": [size, *({k: v} for k, v in models.items())]}
