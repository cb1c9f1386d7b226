"""`python -m seq2seq.data [overrides]`: prepare the configured data and print its statistics.

Composes `configs/train.yaml` like training does (same overrides, e.g. `data=toy_reverse` or
`data.root=../shared/datasets/multi30k data.src_lang=en data.tgt_lang=fr`), but without
Hydra's run directory: this command only reads data and fills the cache, then says where the
data set's files lie (`data/<data.name>/` of the checkout by default, see data/README.md).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from seq2seq import cli, variants
from seq2seq.data.files import is_url
from seq2seq.data.prepare import prepare_data
from seq2seq.data.sources import SPLITS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def main(overrides: list[str]) -> dict[str, Any]:
    variants.register()  # experiment=compare_attention* chooses a variant, as in training
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=cfg.seed)
    stats = data.stats()
    print(f"data: {cfg.data.name} {cfg.data.src_lang}-{cfg.data.tgt_lang}")
    print(format_stats(stats))
    print(format_files(Path(cfg.cache_dir) / cfg.data.name, cfg.data.get("root")))
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    vocab = (
        f"{stats['src_vocab_size']} joint"
        if stats["joint_vocabulary"]
        else f"{stats['src_vocab_size']} source / {stats['tgt_vocab_size']} target"
    )
    lines = [
        f"vocabulary: {vocab}",
        f"max_tokens: {stats['max_tokens']}  max_length: {stats['max_length']}  "
        f"train pairs dropped as too long: {stats['train_pairs_dropped_too_long']}",
        f"{'split':<11}{'pairs':>8}{'src tokens':>12}{'tgt tokens':>12}{'batches':>9}"
        f"{'padding':>9}",
    ]
    for split in SPLITS:
        s = stats["splits"][split]
        lines.append(
            f"{split:<11}{s['pairs']:>8}{s['source_tokens']:>12}{s['target_tokens']:>12}"
            f"{s['batches']:>9}{s['padding']:>9.1%}"
        )
    return "\n".join(lines)


def format_files(home: Path, root: str | None, listed: int = 8) -> str:
    """Where the data set's files lie: each file the toolkit downloaded or built for it (a
    count and size for folders of more than `listed` files), and the raw text read in place."""
    lines = [f"files under {_shown(home)}:"]
    for folder in sorted(p for p in home.iterdir() if p.is_dir()) if home.is_dir() else []:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if len(files) > listed:
            size = sum(p.stat().st_size for p in files)
            lines.append(f"  {folder.name}/  {len(files)} files, {_megabytes(size)}")
        else:
            lines += [f"  {p.relative_to(home)}  {_megabytes(p.stat().st_size)}" for p in files]
    if root and not is_url(root):
        lines.append(f"raw text read in place from {_shown(Path(root))} (data.root)")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when inside it: shorter, and what a user types
    (symbolic links kept as the user wrote them)."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    cli.reports_errors(main)(sys.argv[1:])
