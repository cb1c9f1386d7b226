"""Test sets for scoring a trained model: a split of its data set by name, or a pair of files.

`load_split` reads a split of the data set a model was trained on, by our name (train,
validation, test) or, for file-based data sets, by another file prefix under its root (e.g.
Multi30k's `test_2017_flickr`). `read_file_pair` reads any line-aligned source and reference
files, plain or gzip. `EvaluationSet` batches the pairs as validation and test are batched in
training, so `Validator` scores them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.data.batch import Batch
from seq2seq.data.batching import collate, encode_texts, pack, sorted_order
from seq2seq.data.sources import SPLITS, Columns, read_aligned
from seq2seq.data.tokenizer import Tokenizer


def load_split(data_cfg: DictConfig, split: str, cache_dir: Path) -> Columns:
    """`split` of the data set `data_cfg` describes (a trained model's `data` config). A data
    set of line-aligned files is read as files (no `datasets` import); training pairs are
    those training kept (no empty side)."""
    # _partial_ then call: the constructor's ValueError reaches the user as is
    source = instantiate(data_cfg.source, _partial_=True)()
    if hasattr(source, "read_split") and split != "train":
        return source.read_split(split, Path(cache_dir))
    if split not in SPLITS:
        raise ValueError(
            f"data.split={split!r}: the {data_cfg.name} data set has the splits "
            f"{', '.join(SPLITS)} only; to score other files, give src=<file> ref=<file>"
        )
    loaded = source.load(Path(cache_dir))[split]
    return Columns(list(loaded["source"]), list(loaded["target"]))


def read_file_pair(
    src: str | Path, ref: str | Path, *, src_lang: str, tgt_lang: str, languages: Sequence[str]
) -> Columns:
    """Line-aligned source and reference files. A file whose name ends in a language code of
    `languages` (`test.de`, `test.en.gz`) must be in the language of its side."""
    paths = {"src": Path(src), "ref": Path(ref)}
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{key}: no such file: {path}")
    known = {*languages, src_lang, tgt_lang}
    for key, lang, other in (("src", src_lang, tgt_lang), ("ref", tgt_lang, src_lang)):
        named = file_language(paths[key])
        if named in known and named != lang:
            swapped = " (src and ref swapped?)" if named == other else ""
            raise ValueError(
                f"{key}={paths[key]}: the file name says language {named!r}, but the model "
                f"translates {src_lang}→{tgt_lang}, so {key} must be {lang!r}{swapped}"
            )
    pairs = read_aligned(paths["src"], paths["ref"])
    if len(pairs) == 0:
        raise ValueError(f"src: {paths['src']} is empty")
    return pairs


def file_language(path: Path) -> str:
    """The last suffix of a file name, .gz aside: `test.de.gz` -> `de` ('' without one)."""
    name = Path(path).name.removesuffix(".gz")
    return name.rsplit(".", 1)[-1] if "." in name else ""


def file_set_name(path: Path) -> str:
    """A name for the test set of a source file: its name without .gz and language suffix."""
    name = Path(path).name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


class EvaluationSet:
    """One set of pairs under a name, encoded and batched as a validation split: every pair,
    longest first, at most `max_tokens` per batch. It answers the `PreparedData` calls a
    `Validator` makes (`batches`, `sources`, `references`, `tokenizer`) for its own name."""

    def __init__(self, name: str, pairs: Columns, tokenizer: Tokenizer, max_tokens: int) -> None:
        self.name, self.tokenizer = name, tokenizer
        self._sources, self._references = pairs.source, pairs.target
        source = encode_texts(tokenizer.encode_sources, self._sources)
        target = encode_texts(tokenizer.encode_targets, self._references)
        src_lengths, tgt_lengths = source.lengths + 1, target.lengths + 1  # EOS; BOS

        def too_long(row: int, cost: int) -> str:
            return (
                f"line {row + 1} of {name} needs {cost} subword tokens (source + EOS, target "
                f"+ BOS), more than the model's batch, data.max_tokens={max_tokens}"
            )

        order = sorted_order(src_lengths, tgt_lengths)
        groups = pack(order, src_lengths, tgt_lengths, max_tokens, too_long)
        self._batches = [collate(rows, source, target) for rows in groups]

    def batches(self, split: str, epoch: int = 0) -> list[Batch]:
        self._check(split)
        return list(self._batches)

    def sources(self, split: str) -> list[str]:
        self._check(split)
        return list(self._sources)

    def references(self, split: str) -> list[str]:
        self._check(split)
        return list(self._references)

    def _check(self, split: str) -> None:
        if split != self.name:
            raise ValueError(f"this evaluation set is {self.name!r}, not {split!r}")
