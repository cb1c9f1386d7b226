"""Where the toolkit keeps its data: `data/` of the checkout it runs from, else the user's cache.

`cache_dir` in the configs is `${seq2seq.data_home:}`, the OmegaConf resolver registered here
(importing `seq2seq` registers it, before any config is composed). Each data set gets its own
folder below it, `<data home>/<data.name>/`, holding what was downloaded for it and what was
prepared from it (see data/README.md for the layout).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
# the sub-folders of a data set's folder that the toolkit writes; `make clean-data` removes these
DOWNLOADS, TOKENIZERS, HUB = "downloads", "tokenizers", "hub"


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source checkout the package runs from, or None for an installed package.

    Found from the package's own location, not the working directory (Hydra may or may not
    change it): a checkout has pyproject.toml beside `seq2seq/`, site-packages has not.
    """
    root = package_dir.parent
    return root if (root / "pyproject.toml").is_file() else None


def data_home(package_dir: Path = PACKAGE_DIR) -> Path:
    """$SEQ2SEQ_CACHE when set; else `<checkout>/data`; else `$XDG_CACHE_HOME/seq2seq`
    (`~/.cache/seq2seq` by default) for an installed package."""
    if override := os.environ.get("SEQ2SEQ_CACHE"):
        return Path(override)
    if (root := checkout_root(package_dir)) is not None:
        return root / "data"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seq2seq"


OmegaConf.register_new_resolver("seq2seq.data_home", lambda: str(data_home()), replace=True)


def omp_num_threads(default: int = 2) -> int | str:
    """$OMP_NUM_THREADS as an int; `default` when it is unset or empty (OpenMP ignores an empty
    one too); any other value as given, for the config check to reject naming the key."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return default
    return int(value) if value.isdigit() else value


OmegaConf.register_new_resolver("seq2seq.omp_num_threads", omp_num_threads, replace=True)
