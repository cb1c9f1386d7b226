"""Where parallel text comes from.

Each source is chosen by `_target_` under `source:` in a `configs/data/*.yaml` and has one method,
`load(cache_dir) -> DatasetDict` (`cache_dir`: the data set's own folder, `<data home>/<data.name>`,
where anything downloaded is kept), returning `train`, `validation` and `test` splits with the
string columns `source` and `target`. Training pairs with an empty side are dropped (with a
warning naming where they were); validation and test are returned whole, so scores are always
over the complete reference set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from seq2seq.data.files import RemoteFileMissing, fetch, is_url, read_lines
from seq2seq.paths import HUB

# The Hugging Face `datasets` library (most of a second to import) is imported where a Dataset
# is made: reading a test set from files (seq2seq.evaluate) needs none of it.
if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class DataSource(Protocol):
    def load(self, cache_dir: Path) -> DatasetDict: ...


@dataclass(frozen=True)
class Columns:
    """Line-aligned sentences as read from a pair of files: `target[i]` translates `source[i]`."""

    source: list[str]
    target: list[str]

    def __len__(self) -> int:
        return len(self.source)


def pairs(sources: Sequence[str], targets: Sequence[str]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict({"source": list(sources), "target": list(targets)})


def drop_empty_pairs(train: Dataset, locate: Callable[[int], str]) -> Dataset:
    """Drop training pairs with an empty or blank side and log how many and where.

    An empty target only teaches the model to stop at once and an empty source has nothing to
    attend to; corpora such as WMT have a few, so they are dropped rather than fatal.
    """
    empty = [
        row
        for row, (source, target) in enumerate(zip(train["source"], train["target"]))
        if not (source and source.strip()) or not (target and target.strip())
    ]
    if not empty:
        return train
    where = "; ".join(locate(row) for row in empty[:5])
    more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
    log.warning("dropped %d training pairs with an empty side: %s%s", len(empty), where, more)
    dropped = set(empty)
    return train.select([row for row in range(len(train)) if row not in dropped])


def check_split_names(splits: Mapping[str, str], key: str) -> dict[str, str]:
    if sorted(splits) != sorted(SPLITS):
        raise ValueError(f"{key} must map exactly {list(SPLITS)}, got {sorted(splits)}")
    return dict(splits)


def check_language(lang: str, key: str, available: Sequence[str], where: str) -> None:
    if lang not in available:
        raise ValueError(
            f"{key}: unknown language code {lang!r} for {where}; "
            f"available: {', '.join(sorted(available))}"
        )


class ParallelTextSource:
    """Line-aligned files `{root}/{prefix}.{lang}[.gz]`: line i of one language translates
    line i of the other.

    `root` is a folder or an http(s)/file URL; remote files are downloaded once into
    `cache_dir/downloads`, so the default Multi30k config works online on first use and offline
    afterwards. `splits` maps our split names to file prefixes (validation -> val).
    """

    def __init__(
        self,
        root: str,
        src_lang: str,
        tgt_lang: str,
        splits: Mapping[str, str] | None = None,
        languages: Sequence[str] | None = None,
    ) -> None:
        self.root = str(root).rstrip("/")
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.splits = check_split_names(splits or {s: s for s in SPLITS}, "data.source.splits")
        if languages:
            for key, lang in (("data.src_lang", src_lang), ("data.tgt_lang", tgt_lang)):
                check_language(lang, key, list(languages), self.root)

    def load(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict

        return DatasetDict({split: self.load_split(split, cache_dir) for split in self.splits})

    def load_split(self, split: str, cache_dir: Path) -> Dataset:
        """One split as a Dataset, by our name (train, validation, test); training pairs with
        an empty side dropped."""
        src_path, tgt_path = self._split_files(split, cache_dir)
        columns = read_aligned(src_path, tgt_path)
        loaded = pairs(columns.source, columns.target)
        if split != "train":
            return loaded
        where = f"{src_path.name}/{tgt_path.name}"
        return drop_empty_pairs(loaded, lambda row: f"line {row + 1} of {where}")

    def read_split(self, split: str, cache_dir: Path) -> Columns:
        """Every pair of one split, by our name or by its file prefix, e.g. Multi30k's
        test_2017_flickr: another test set of the data set, for evaluation."""
        return read_aligned(*self._split_files(split, cache_dir))

    def _split_files(self, split: str, cache_dir: Path) -> tuple[Path, Path]:
        if not is_url(self.root) and not Path(self.root).is_dir():
            raise FileNotFoundError(f"data.root: {self.root} is not a folder")
        prefix = self.splits.get(split, split)
        src_path = self._locate(prefix, self.src_lang, cache_dir)
        return src_path, self._locate(prefix, self.tgt_lang, cache_dir)

    def _locate(self, prefix: str, lang: str, cache_dir: Path) -> Path:
        names = [f"{prefix}.{lang}.gz", f"{prefix}.{lang}"]
        if is_url(self.root):
            return self._download(names, Path(cache_dir))
        for name in names:
            if (path := Path(self.root) / name).is_file():
                return path
        found = sorted(
            {p.name.removesuffix(".gz").split(".")[-1] for p in Path(self.root).glob(prefix + ".*")}
        )
        raise FileNotFoundError(
            f"no file for language {lang!r}, split prefix {prefix!r}: tried "
            f"{', '.join(str(Path(self.root) / n) for n in names)}; languages found there for "
            f"{prefix!r}: {', '.join(found) or 'none'} (see data.src_lang, data.tgt_lang, "
            "data.source.splits)"
        )

    def _download(self, names: list[str], cache_dir: Path) -> Path:
        urls = [f"{self.root}/{name}" for name in names]
        for url in urls:
            try:
                return fetch(url, cache_dir)
            except RemoteFileMissing:
                continue
            except ConnectionError as error:
                raise ConnectionError(
                    f"{error}. Offline? Put the files "
                    f"{{{','.join(self.splits.values())}}}.{{{self.src_lang},{self.tgt_lang}}}"
                    "[.gz] in a folder and run with data.root=<that folder>"
                ) from None
        raise FileNotFoundError(f"no such file: tried {', '.join(urls)} (see data.root)")


def read_aligned(src_path: Path, tgt_path: Path) -> Columns:
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"parallel files differ in length: {src_path} has {len(sources)} lines but "
            f"{tgt_path} has {len(targets)}; line i of one must translate line i of the other"
        )
    return Columns(sources, targets)


class HubTranslationSource:
    """A Hugging Face data set whose `column` holds {language: text} dicts (wmt14, iwslt2017,
    opus_books), or a local folder in the same schema (json/parquet/arrow files, or a
    `save_to_disk` copy): both go through the same `datasets.load_dataset` call.

    A missing validation or test split is carved from train when `validation_fraction` /
    `test_fraction` is set (deterministically, from `held_out_seed`); otherwise it is an error.
    """

    def __init__(
        self,
        path: str,
        src_lang: str,
        tgt_lang: str,
        name: str | None = None,
        revision: str | None = None,
        column: str = "translation",
        splits: Mapping[str, str] | None = None,
        validation_fraction: float | None = None,
        test_fraction: float | None = None,
        held_out_seed: int = 0,
    ) -> None:
        self.path, self.name, self.revision, self.column = path, name, revision, column
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.splits = check_split_names(splits or {s: s for s in SPLITS}, "data.source.splits")
        self.fractions = {"validation": validation_fraction, "test": test_fraction}
        for split, fraction in self.fractions.items():
            if fraction is not None and not 0 < fraction < 1:
                raise ValueError(
                    f"data.source.{split}_fraction must be in (0, 1) or null, got {fraction}"
                )
        self.held_out_seed = held_out_seed
        if name is not None and Path(path).is_dir():
            raise ValueError(
                f"data.source.path={path} is a local folder, which has no named configurations: "
                f"set data.source.name=null (got {name!r})"
            )

    def load(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict

        available = self._load_dataset(Path(cache_dir))
        if self.splits["train"] not in available:
            raise ValueError(
                f"{self.path} has no {self.splits['train']!r} split (it has: "
                f"{', '.join(available)}); see data.source.splits"
            )
        loaded = {"train": self._to_pairs(available[self.splits["train"]])}
        for split in ("validation", "test"):
            if self.splits[split] in available:
                loaded[split] = self._to_pairs(available[self.splits[split]])
            else:
                loaded["train"], loaded[split] = self._hold_out(loaded["train"], split, available)
        loaded["train"] = drop_empty_pairs(
            loaded["train"], lambda row: f"{self.path} train row {row}"
        )
        return DatasetDict(loaded)

    def _load_dataset(self, cache_dir: Path) -> DatasetDict:
        import datasets

        try:
            return datasets.load_dataset(
                self.path, self.name, revision=self.revision, cache_dir=str(cache_dir / HUB)
            )
        except ConnectionError as error:
            raise ConnectionError(
                f"cannot load {self.path!r} from the Hugging Face hub ({error}). Offline? Set "
                "data.source.path to a local folder with the data set in the same schema"
            ) from None

    def _to_pairs(self, split: Dataset) -> Dataset:
        """(source, target) columns from the {language: text} column, without a Python loop."""
        if self.column not in split.column_names:
            raise ValueError(
                f"{self.path} has no column {self.column!r} (columns: "
                f"{', '.join(split.column_names)}); see data.source.column"
            )
        from datasets import Translation

        feature = split.features[self.column]
        if isinstance(feature, Translation):
            languages = feature.languages
        elif isinstance(feature, dict):
            languages = list(feature)
        else:
            raise ValueError(
                f"{self.path} column {self.column!r} holds {feature}, not {{language: text}} "
                "dicts; see data.source.column"
            )
        for key, lang in (("data.src_lang", self.src_lang), ("data.tgt_lang", self.tgt_lang)):
            check_language(lang, key, list(languages), f"{self.path} {self.name or ''}".strip())
        flat = split.select_columns([self.column]).flatten()
        return flat.select_columns(
            [f"{self.column}.{self.src_lang}", f"{self.column}.{self.tgt_lang}"]
        ).rename_columns(
            {f"{self.column}.{self.src_lang}": "source", f"{self.column}.{self.tgt_lang}": "target"}
        )

    def _hold_out(self, train: Dataset, split: str, available: Mapping) -> tuple[Dataset, Dataset]:
        fraction = self.fractions[split]
        if fraction is None:
            raise ValueError(
                f"{self.path} has no {self.splits[split]!r} split (it has: "
                f"{', '.join(available)}); set data.source.{split}_fraction to hold out part of "
                "train, or map another split with data.source.splits"
            )
        parts = train.train_test_split(test_size=fraction, seed=self.held_out_seed)
        log.info("held out %d of %d training pairs as %s", len(parts["test"]), len(train), split)
        return parts["train"], parts["test"]


class _LocalFileSource:
    """Base for one file per split under `root`; subclasses parse one file format."""

    def __init__(self, root: str, files: Mapping[str, str]) -> None:
        self.root = Path(root)
        self.files = check_split_names(files, "data.source.files")

    def load(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict

        loaded = {}
        for split, name in self.files.items():
            path = self.root / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"no {split} file: {path} does not exist (see data.root, data.source.files)"
                )
            sources, targets, line_numbers = self.read(path)
            loaded[split] = pairs(sources, targets)
            if split == "train":
                loaded[split] = drop_empty_pairs(
                    loaded[split], lambda row, p=path, n=line_numbers: f"{p}:{n[row]}"
                )
        return DatasetDict(loaded)

    def read(self, path: Path) -> tuple[list[str], list[str], list[int]]:
        """Sources, targets and the 1-based line number of each pair."""
        raise NotImplementedError


class TsvSource(_LocalFileSource):
    """Tab-separated files, one pair a line. Columns are 0-based indices, or header names when
    the file's first line is a header."""

    def __init__(
        self,
        root: str,
        files: Mapping[str, str],
        source_column: int | str = 0,
        target_column: int | str = 1,
    ) -> None:
        super().__init__(root, files)
        if type(source_column) is not type(target_column):
            raise ValueError(
                "data.source.source_column and data.source.target_column must both be indices "
                f"or both be header names, got {source_column!r} and {target_column!r}"
            )
        self.columns = (source_column, target_column)

    def read(self, path: Path) -> tuple[list[str], list[str], list[int]]:
        lines = read_lines(path)
        first = 1
        columns = self.columns
        if isinstance(columns[0], str):
            header = lines[0].split("\t") if lines else []
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(f"{path}:1: no column {missing[0]!r} in header {header}")
            columns, lines, first = tuple(header.index(c) for c in columns), lines[1:], 2
        sources, targets = [], []
        for number, line in enumerate(lines, start=first):
            # a blank line is a pair with two empty sides: dropped from train like any other
            fields = line.split("\t") if line.strip() else [""] * (max(columns) + 1)
            if len(fields) <= max(columns):
                raise ValueError(
                    f"{path}:{number}: expected at least {max(columns) + 1} tab-separated "
                    f"columns, got {len(fields)}"
                )
            sources.append(fields[columns[0]])
            targets.append(fields[columns[1]])
        return sources, targets, list(range(first, first + len(lines)))


class JsonlSource(_LocalFileSource):
    """JSON lines files, one object a line; fields may be dotted paths (`translation.de`)."""

    def __init__(
        self,
        root: str,
        files: Mapping[str, str],
        source_field: str = "source",
        target_field: str = "target",
    ) -> None:
        super().__init__(root, files)
        self.fields = (source_field, target_field)

    def read(self, path: Path) -> tuple[list[str], list[str], list[int]]:
        sources, targets, numbers = [], [], []
        for number, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue  # a blank line is not a record, e.g. a trailing newline
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: invalid JSON ({error.msg})") from None
            source, target = (_field(record, f, f"{path}:{number}") for f in self.fields)
            sources.append(source)
            targets.append(target)
            numbers.append(number)
        return sources, targets, numbers


def _field(record: object, dotted: str, where: str) -> str:
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{where}: no field {dotted!r} (see data.source.*_field)")
        value = value[part]
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {dotted!r} is {type(value).__name__}, not a string")
    return value
