"""A tiny but real training run: the users' Hydra config, shrunk to seconds on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig
from support import REPO, compose_config  # noqa: F401 - re-exported to the tests here

from seq2seq.train import train

# toy copy task and a one-layer Transformer: a full epoch is a few seconds on one core
TINY = (
    "data=toy_copy",
    "data.source.train_size=300",
    "data.source.validation_size=30",
    "data.source.test_size=30",
    "data.max_tokens=400",
    "model=transformer",
    "model.d_model=32",
    "model.ff_size=64",
    "model.num_heads=2",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=1",
    "search=greedy",
    "trainer.progress=false",
    "trainer.log_every=5",
    "trainer.validate_every=1000",
    "trainer.num_threads=1",
)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """The train config with TINY and the given overrides, caching tokenizers under tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_config("train", *TINY, f"cache_dir={tmp_path / 'cache'}", *overrides)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run of 100 updates, validated every 50 and at each epoch's end, keeping
    its latest two numbered checkpoints and its best one for averaging."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = compose_config(
        "train",
        *TINY,
        f"cache_dir={tmp / 'cache'}",
        "trainer.max_updates=100",
        "trainer.validate_every=50",
        "trainer.keep_last=2",
        "trainer.keep_best=1",
        # without the Transformer's 400-update warm-up, 100 updates give varied (if wrong)
        # translations, so comparing two decoders' outputs compares text, not empty lines
        "scheduler=constant",
        "optim.lr=3e-3",
    )
    train(cfg, tmp / "run")
    return tmp / "run"
