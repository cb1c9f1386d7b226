"""Gold word alignments (`configs/alignment/*.yaml`): human links between the words of sentence
pairs, against which a model's attention is scored (`python -m seq2seq.align`).

A set is tokenized text, one sentence pair per line, plus one line of links per pair: `i-j` a
sure link, `ipj` a possible one (Och & Ney 2000), `i` indexing the words of one side and `j`
those of the other. `GoldAlignmentSet.load` returns the pairs with links turned into 0-based
(source word, target word) pairs, whatever the file's index base and side order.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.files import fetch, is_url, read_lines

log = logging.getLogger(__name__)

Link = tuple[int, int]  # (source word, target word), 0-based
_LINK = re.compile(r"^(\d+)([-p])(\d+)$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class GoldPair:
    """One sentence pair: its words and the gold links between them."""

    source: list[str]
    target: list[str]
    sure: frozenset[Link]
    possible: frozenset[Link]  # includes the sure links (S ⊆ P, as AER assumes)


class GoldAlignmentSet:
    """A gold-aligned test set as `configs/alignment/<name>.yaml` describes it.

    `root` is a folder holding the files, or a URL (http/https/file) of a folder or of a
    `.tar.gz` archive holding them (anywhere inside, found by file name); downloads land in
    `cache_dir/downloads` once, and an archive is checked against `sha256` when one is given.
    `target_file: null` means `source_file` holds both sides as `source<separator>target`.
    """

    def __init__(
        self,
        *,
        name: str,
        src_lang: str,
        tgt_lang: str,
        root: str,
        source_file: str,
        links_file: str,
        target_file: str | None = None,
        separator: str = " ||| ",
        encoding: str = "utf-8",
        index_base: int = 1,
        link_order: str = "source-target",
        sha256: str | None = None,
    ) -> None:
        if link_order not in ("source-target", "target-source"):
            raise ValueError(
                f"alignment.link_order must be source-target or target-source, got {link_order!r}"
            )
        if index_base not in (0, 1):
            raise ValueError(f"alignment.index_base must be 0 or 1, got {index_base!r}")
        self.name, self.src_lang, self.tgt_lang = name, src_lang, tgt_lang
        self.root, self.sha256 = str(root), sha256
        self.source_file, self.target_file, self.links_file = source_file, target_file, links_file
        self.separator, self.encoding = separator, encoding
        self.index_base, self.link_order = index_base, link_order

    def load(self, cache_dir: Path) -> list[GoldPair]:
        folder = self._local_folder(Path(cache_dir))
        log.info("reading gold alignments %s from %s", self.name, folder)
        sources, targets = self._sentences(folder)
        links_path = folder / self.links_file
        links = _content_lines(read_lines(links_path, self.encoding))
        if len(links) != len(sources):
            raise ValueError(
                f"{links_path}: {len(links)} lines of links for {len(sources)} sentence pairs "
                f"in {folder / self.source_file}"
            )
        return [
            self._pair(source.split(), target.split(), line, f"{links_path}:{number}")
            for number, (source, target, line) in enumerate(zip(sources, targets, links), 1)
        ]

    def _sentences(self, folder: Path) -> tuple[list[str], list[str]]:
        source_path = folder / self.source_file
        sources = _content_lines(read_lines(source_path, self.encoding))
        if self.target_file is None:
            return _split_sides(sources, self.separator, source_path)
        target_path = folder / self.target_file
        targets = _content_lines(read_lines(target_path, self.encoding))
        if len(sources) != len(targets):
            raise ValueError(
                f"{target_path}: {len(targets)} lines, but {source_path} has {len(sources)}"
            )
        return sources, targets

    def _pair(self, source: list[str], target: list[str], line: str, where: str) -> GoldPair:
        sure, possible = set(), set()
        for token in line.split():
            match = _LINK.match(token)
            if match is None:
                raise ValueError(f"{where}: {token!r} is not a link (i-j sure, ipj possible)")
            i, j = int(match[1]) - self.index_base, int(match[3]) - self.index_base
            link = (i, j) if self.link_order == "source-target" else (j, i)
            if not (0 <= link[0] < len(source) and 0 <= link[1] < len(target)):
                raise ValueError(
                    f"{where}: link {token} lies outside its sentence pair ({len(source)} "
                    f"{self.src_lang} and {len(target)} {self.tgt_lang} words, "
                    f"{self.index_base}-based)"
                )
            possible.add(link)
            if match[2] == "-":
                sure.add(link)
        return GoldPair(source, target, frozenset(sure), frozenset(possible))

    def _local_folder(self, cache_dir: Path) -> Path:
        """A local folder holding the set's files, downloading and unpacking when needed."""
        if not self.root.endswith(_ARCHIVE_SUFFIXES):
            if not is_url(self.root):
                return Path(self.root)
            for name in {self.source_file, self.target_file, self.links_file} - {None}:
                fetched = fetch(f"{self.root.rstrip('/')}/{name}", cache_dir)
                folder = cache_dir / "alignment" / self.name
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(fetched.read_bytes())
            return folder
        archive = fetch(self.root, cache_dir) if is_url(self.root) else Path(self.root)
        return self._unpack(archive, cache_dir / "alignment" / self.name)

    def _unpack(self, archive: Path, folder: Path) -> Path:
        if self.sha256 is not None:
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != self.sha256:
                raise ValueError(
                    f"{archive}: sha256 {digest} differs from alignment.sha256 {self.sha256}"
                )
        wanted = {self.source_file, self.target_file, self.links_file} - {None}
        with tarfile.open(archive) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = sorted(wanted - members.keys())
            if missing:
                raise ValueError(f"{archive}: no file named {', '.join(missing)} in the archive")
            folder.mkdir(parents=True, exist_ok=True)
            for name in wanted:
                (folder / name).write_bytes(tar.extractfile(members[name]).read())
        return folder


def _content_lines(lines: list[str]) -> list[str]:
    """The lines without the empty ones that end some files (RWTH's end with one)."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _split_sides(lines: list[str], separator: str, path: Path) -> tuple[list[str], list[str]]:
    sources, targets = [], []
    for number, line in enumerate(lines, 1):
        sides = line.split(separator.strip())
        if len(sides) != 2:
            raise ValueError(f"{path}:{number}: expected 'source{separator}target', got {line!r}")
        sources.append(sides[0].strip())
        targets.append(sides[1].strip())
    return sources, targets
