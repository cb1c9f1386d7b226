"""What many tests share: the repository's paths and its real Hydra configs."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NoReturn

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from seq2seq import variants

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
MULTI30K = Path(
    os.environ.get("SEQ2SEQ_MULTI30K", REPO.parent / "shared" / "datasets" / "multi30k")
)


def missing_data(reason: str) -> NoReturn:
    """Skip a test whose real data is not here, or fail it where the data must be here
    (SEQ2SEQ_REQUIRE_DATA=1, which .ci/run sets: a CI run without ../shared must not pass by
    skipping every test on real data)."""
    if os.environ.get("SEQ2SEQ_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (SEQ2SEQ_REQUIRE_DATA=1)")
    pytest.skip(reason)


variants.register()  # as seq2seq.train does before Hydra composes


def compose_config(name: str | None, *overrides: str, config_dir: Path = CONFIG_DIR) -> DictConfig:
    """configs/<name>.yaml as users run it, with these command-line overrides."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def compose_with_hydra(*overrides: str, config_dir: Path = CONFIG_DIR) -> DictConfig:
    """The train config with its `hydra` node (sweeper parameters, run directory names), as a
    sweep's job composes it."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def sweep_points(experiment: str, *sweep: str, config_dir: Path = CONFIG_DIR) -> list[list[str]]:
    """The jobs `python -m seq2seq.train -m experiment=<experiment> [sweep]` launches: the
    experiment's sweeper parameters, those of `sweep` (e.g. "variant=a,b") replacing them as on
    the command line, expanded by Hydra's own basic sweeper (globs included)."""
    params = compose_with_hydra(f"experiment={experiment}", config_dir=config_dir)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir)))
    parser = OverridesParser.create(config_loader=loader)
    items = dict(params.hydra.sweeper.params.items())
    items.update(item.split("=", 1) for item in sweep)
    (jobs,) = BasicSweeper.split_arguments(
        parser.parse_overrides([f"{k}={v}" for k, v in items.items()]), max_batch_size=None
    )
    return jobs


@functools.cache  # composing is the slow part of model tests; callers copy before mutating
def compose_model(*overrides: str, config_dir: Path = CONFIG_DIR) -> DictConfig:
    """The `model` node of the train config, e.g. compose_model("model=rnn",
    "model/attention=bahdanau") (composed whole: model configs also choose optim/scheduler)."""
    return compose_config("train", *overrides, config_dir=config_dir).model


def training_recipe(cfg: DictConfig) -> tuple[str, float, list[float], str]:
    """(optimizer, lr, betas, schedule) of a train config; the schedule with its warm-up
    length when it has one, e.g. ("Adam", 5e-4, [0.9, 0.98], "inverse_sqrt_warmup/400")."""
    schedule = cfg.scheduler._target_.rsplit(".", 1)[-1]
    if "warmup_updates" in cfg.scheduler:
        schedule += f"/{cfg.scheduler.warmup_updates}"
    return cfg.optim._target_.rsplit(".", 1)[-1], cfg.optim.lr, list(cfg.optim.betas), schedule
