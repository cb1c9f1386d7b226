"""Corpus metrics, and the files a run leaves behind.

BLEU (Papineni et al., 2002) and chrF (Popović, 2015) are sacreBLEU's (Post, 2018) with its
defaults: one reference, mixed case, the 13a tokeniser for BLEU. Hypotheses must be detokenised
text and references the raw corpus lines, so that the scores and their signatures compare with
published numbers and with `sacrebleu REF -i HYP -m bleu chrf` run on the written files.

Files are written atomically (a temporary file in the same folder, then `os.replace`), so a run
killed mid-write never leaves a truncated `metrics.json` for a comparison to trip over.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sacrebleu.metrics.base import Metric

_MAX_EXPONENT = 700.0  # math.exp overflows a float a little above 709


@dataclass(frozen=True)
class CorpusScore:
    name: str  # sacreBLEU's metric name: "BLEU", "chrF2"
    score: float  # 0-100
    signature: str  # e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """Corpus BLEU of detokenised hypotheses against raw references (13a, mixed case)."""
    # imported when a score is asked for: translating needs none of sacreBLEU and what it
    # imports (lxml, tabulate, portalocker, ...)
    from sacrebleu.metrics import BLEU

    return _corpus_score(BLEU(), hypotheses, references)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """Corpus chrF2 (character 6-grams, beta 2) of detokenised hypotheses against references."""
    from sacrebleu.metrics import CHRF

    return _corpus_score(CHRF(), hypotheses, references)


def _corpus_score(
    metric: Metric, hypotheses: Sequence[str], references: Sequence[str]
) -> CorpusScore:
    _check_aligned(hypotheses, references)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore(result.name, float(result.score), str(metric.get_signature()))


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of hypotheses identical to their reference (the toy tasks' accuracy)."""
    _check_aligned(hypotheses, references)
    return 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(references)


def _check_aligned(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references) or not references:
        raise ValueError(
            f"expected one hypothesis per reference and at least one sentence, got "
            f"{len(hypotheses)} hypotheses for {len(references)} references"
        )


def perplexity(nll_sum: float, num_tokens: int) -> float:
    """exp(summed token negative log-likelihood / token count); inf where exp would overflow."""
    if num_tokens <= 0:
        raise ValueError(f"perplexity needs a positive token count, got {num_tokens}")
    mean_nll = nll_sum / num_tokens
    return math.exp(mean_nll) if mean_nll < _MAX_EXPONENT else math.inf


def write_lines(path: str | Path, lines: Sequence[str]) -> Path:
    """One sentence a line, so line i of every file written for a split is sentence i."""
    for i, line in enumerate(lines):
        if "\n" in line or "\r" in line:
            raise ValueError(f"line {i} of {path} would break the alignment: {line!r}")
    return _write_atomically(Path(path), "".join(f"{line}\n" for line in lines))


def write_translations(
    directory: str | Path, name: str, hypotheses: Sequence[str], references: Sequence[str]
) -> tuple[Path, Path]:
    """`{name}.hyp` beside `{name}.ref` in `directory`, aligned line by line.

    `sacrebleu {name}.ref -i {name}.hyp -m bleu chrf` then reproduces `bleu` and `chrf`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"expected one hypothesis per reference, got {len(hypotheses)} for {len(references)}"
        )
    directory = Path(directory)
    hyp_path = write_lines(directory / f"{name}.hyp", hypotheses)
    return hyp_path, write_lines(directory / f"{name}.ref", references)


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` (e.g. a run's metrics.json) as indented JSON, atomically.

    Serialising comes first, so unserialisable data leaves any previous file untouched.
    """
    return _write_atomically(Path(path), json.dumps(data, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a team
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
