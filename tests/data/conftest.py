"""Fixtures for the data tests: the real Hydra config, and a small slice of the real Multi30k."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
import support
from omegaconf import DictConfig

from seq2seq.data import PreparedData, prepare_data
from seq2seq.data.files import read_lines

MULTI30K = support.MULTI30K
SMALL_SIZES = {"train": 2000, "val": 300, "test_2016_flickr": 300}


def compose_train(*overrides: str) -> DictConfig:
    """configs/train.yaml as users run it, with the given command-line overrides."""
    return support.compose_config("train", *overrides)


@pytest.fixture(scope="session")
def compose() -> Callable[..., DictConfig]:
    return compose_train


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    if not (MULTI30K / "train.de.gz").is_file():
        support.missing_data(f"the offline Multi30k copy is not at {MULTI30K}")
    return MULTI30K


@pytest.fixture(scope="session")
def small_multi30k(multi30k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first lines of each Multi30k split: German and French plain text, English gzip."""
    root = tmp_path_factory.mktemp("multi30k_small")
    for prefix, size in SMALL_SIZES.items():
        for lang in ("de", "en", "fr"):
            text = "".join(
                f"{line}\n" for line in read_lines(multi30k_dir / f"{prefix}.{lang}.gz")[:size]
            )
            if lang == "en":
                (root / f"{prefix}.{lang}.gz").write_bytes(gzip.compress(text.encode()))
            else:
                (root / f"{prefix}.{lang}").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def small_cfg(small_multi30k: Path, tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    """The default config on the small slice with a 500-piece vocabulary (trains in < 1 s)."""
    cache = tmp_path_factory.mktemp("cache")
    return compose_train(
        f"data.root={small_multi30k}", "tokenizer.vocab_size=500", f"cache_dir={cache}"
    )


@pytest.fixture(scope="session")
def small_data(small_cfg: DictConfig) -> PreparedData:
    return prepare_data(small_cfg.data, small_cfg.tokenizer, small_cfg.cache_dir, seed=0)
