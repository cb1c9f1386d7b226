"""Reference aligners for `python -m seq2seq.align`: a statistical word aligner trained on the
same parallel text as the model, to tell what the model's attention could have found."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.alignment import read_pharaoh
from seq2seq.data.alignment import GoldPair, Link

log = logging.getLogger(__name__)
_WORDS = re.compile(r"\w+|[^\w\s]")


def eflomal_links(
    data_cfg: DictConfig, gold: Sequence[GoldPair], cache_dir: Path
) -> list[set[Link]] | str:
    """eflomal's forward links (Östling & Tiedemann 2016) for the gold pairs, trained on the
    model's training corpus plus the gold sentences, lowercased; a "skipped: ..." line when
    eflomal is not installed (`pip install eflomal`, the `align` extra)."""
    try:
        from eflomal import Aligner
    except ImportError:
        return "skipped: eflomal is not installed (pip install eflomal)"
    train = instantiate(data_cfg.source).load(cache_dir)["train"]
    # gold sentences come tokenized; the training text is split the same way (words and
    # punctuation apart) so both halves share one vocabulary
    sources = [" ".join(_WORDS.findall(s.lower())) for s in train["source"]]
    targets = [" ".join(_WORDS.findall(t.lower())) for t in train["target"]]
    sources += [" ".join(pair.source).lower() for pair in gold]
    targets += [" ".join(pair.target).lower() for pair in gold]
    log.info("training eflomal on %d sentence pairs", len(sources))
    with tempfile.TemporaryDirectory() as folder:
        links_file = Path(folder) / "forward.align"
        Aligner().align(sources, targets, links_filename_fwd=str(links_file))
        lines = links_file.read_text(encoding="utf-8").split("\n")
        links_file.write_text("\n".join(lines[len(train) : len(train) + len(gold)]) + "\n")
        return read_pharaoh(links_file, len(gold))
