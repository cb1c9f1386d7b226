"""Attention as word alignment: from a model's subword attention to links between gold words,
and the scores of those links against human ones (Och & Ney 2000).

Shape letters: T target pieces, S source pieces (each with EOS last, as the model sees them),
J target words, I source words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seq2seq.data.alignment import GoldPair, Link

EXTRACTIONS = ("argmax", "threshold")


@dataclass(frozen=True)
class WordPieces:
    """A sentence's words encoded word by word, so every piece knows its word."""

    ids: list[int]  # the sentence's piece ids, without EOS
    word_of_piece: list[int]  # (pieces,) the word each piece belongs to


def encode_words(
    encode: Callable[[list[str]], list[list[int]]], words: Sequence[str]
) -> WordPieces:
    """Encode `words` one by one with `encode` (a tokenizer's `encode_sources` or
    `encode_targets`). sentencepiece never joins pieces across whitespace, so this gives the
    pieces of the whole sentence; a word that normalises to nothing gets no piece."""
    ids, word_of_piece = [], []
    for word, pieces in enumerate(encode(list(words))):
        ids.extend(pieces)
        word_of_piece.extend([word] * len(pieces))
    return WordPieces(ids, word_of_piece)


def word_attention(
    weights: np.ndarray,
    source: WordPieces,
    target: WordPieces,
    source_words: int,
    target_words: int,
    shift: int = 0,
) -> np.ndarray:
    """(J, I) attention between words from piece attention `weights` (T, S) of one sentence.

    Row t of `weights` is the attention computed while predicting target piece t (both wirings
    and the Transformer). With `shift=1` piece t takes row t + 1 instead, the attention computed
    while piece t is the decoder's input (Chen et al. 2020 found that one aligns better in
    Transformers). The EOS column is dropped and each row renormalised, so attention parked on
    EOS does not count against the words; a source word gets the sum of its pieces' attention,
    a target word the mean of its pieces' rows.
    """
    pieces = len(target.ids)
    rows = weights[shift : shift + pieces, : len(source.ids)].astype(np.float64)  # (T', S')
    totals = rows.sum(axis=1, keepdims=True)
    rows = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    to_source = _membership(source.word_of_piece, source_words)  # (S', I)
    to_target = _membership(target.word_of_piece, target_words).T  # (J, T')
    counts = to_target.sum(axis=1, keepdims=True)
    to_target = np.divide(to_target, counts, out=np.zeros_like(to_target), where=counts > 0)
    return to_target @ rows @ to_source


def _membership(word_of_piece: Sequence[int], words: int) -> np.ndarray:
    matrix = np.zeros((len(word_of_piece), words))
    matrix[np.arange(len(word_of_piece)), word_of_piece] = 1.0
    return matrix


def extract_links(attention: np.ndarray, rule: str = "argmax", threshold: float = 0.5) -> set[Link]:
    """(source word, target word) links from word attention (J, I).

    `argmax`: each target word links to the source word it attends to most (Luong et al. 2015,
    section 5.4), none if its row is all zero. `threshold`: every pair with weight >= threshold,
    so a target word may get several links or none.
    """
    if rule == "argmax":
        return {
            (int(row.argmax()), j) for j, row in enumerate(attention) if row.size and row.max() > 0
        }
    if rule == "threshold":
        return {(int(i), int(j)) for j, i in zip(*np.nonzero(attention >= threshold))}
    raise ValueError(f"extract.rule must be one of {EXTRACTIONS}, got {rule!r}")


def diagonal_links(source_words: int, target_words: int) -> set[Link]:
    """The baseline with no model: target word j links to source word round(j·I/J)."""
    return {
        (min(round(j * source_words / target_words), source_words - 1), j)
        for j in range(target_words)
    }


def alignment_scores(predicted: Sequence[Iterable[Link]], gold: Sequence[GoldPair]) -> dict:
    """Corpus-level alignment error rate, precision and recall (Och & Ney 2000), counts summed
    over sentences, with A the predicted, S the sure and P the possible links (S ⊆ P):

        AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|),  precision = |A∩P| / |A|,  recall = |A∩S| / |S|

    An empty A has precision 0; an empty S has recall 1; AER is 0 when both are empty.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted alignments for {len(gold)} gold pairs")
    a = a_s = a_p = s = 0
    for links, pair in zip(predicted, gold):
        links = set(links)
        a += len(links)
        s += len(pair.sure)
        a_s += len(links & pair.sure)
        a_p += len(links & pair.possible)
    return {
        "aer": 1 - (a_s + a_p) / (a + s) if a + s else 0.0,
        "precision": a_p / a if a else 0.0,
        "recall": a_s / s if s else 1.0,
        "links": a,
        "sure_links": s,
    }


def write_pharaoh(path: Path, alignments: Sequence[Iterable[Link]]) -> None:
    """One line per pair, `i-j` with i the source and j the target word, 0-based: the format
    fast_align, eflomal and awesome-align read and write."""
    lines = [" ".join(f"{i}-{j}" for i, j in sorted(links)) for links in alignments]
    Path(path).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def read_pharaoh(path: Path, pairs: int) -> list[set[Link]]:
    lines = Path(path).read_text(encoding="utf-8").split("\n")[:pairs]
    return [{_pharaoh_link(token) for token in line.split()} for line in lines]


def _pharaoh_link(token: str) -> Link:
    i, j = token.split("-")
    return int(i), int(j)
