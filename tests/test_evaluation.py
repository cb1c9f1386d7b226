"""Metrics against the sacrebleu command line on real Multi30k references, and the run files."""

from __future__ import annotations

import gzip
import json
import math
import random
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import support

from seq2seq import evaluation


@pytest.fixture(scope="module")
def references() -> list[str]:
    """The first 300 English validation sentences of Multi30k."""
    path = support.MULTI30K / "val.en.gz"
    if not path.exists():
        support.missing_data(f"Multi30k's val.en.gz is not at {path}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in islice(f, 300)]


def perturb(sentences: list[str], drop: float, swap: float, seed: int = 0) -> list[str]:
    """A system output stand-in: words dropped and neighbours swapped at the given rates."""
    rng = random.Random(seed)
    out = []
    for sentence in sentences:
        words = [w for w in sentence.split() if rng.random() >= drop]
        for i in range(len(words) - 1):
            if rng.random() < swap:
                words[i], words[i + 1] = words[i + 1], words[i]
        out.append(" ".join(words))
    return out


def sacrebleu_cli(ref: Path, hyp: Path) -> dict[str, dict]:
    """The command line's BLEU and chrF on the same files, by metric name."""
    cli = Path(sys.executable).parent / "sacrebleu"
    command = [str(cli), str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "-w", "4"]
    result = subprocess.run([*command, "--format", "json"], capture_output=True, check=True)
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_scores_match_the_sacrebleu_command_line(references, tmp_path):
    hypotheses = perturb(references, drop=0.15, swap=0.1)
    hyp, ref = evaluation.write_translations(tmp_path, "val", hypotheses, references)
    assert (hyp.parent, ref.parent) == (tmp_path, tmp_path)
    cli = sacrebleu_cli(ref, hyp)
    for score in (evaluation.bleu(hypotheses, references), evaluation.chrf(hypotheses, references)):
        assert 10 < score.score < 90  # a real mix of matches and misses was scored
        assert score.score == pytest.approx(cli[score.name]["score"], abs=5e-5)
        assert score.signature == cli[score.name]["signature"]
    assert "tok:13a" in cli["BLEU"]["signature"] and "case:mixed" in cli["BLEU"]["signature"]


def test_scores_fall_as_the_output_degrades(references):
    levels = [perturb(references, drop=rate, swap=rate) for rate in (0.0, 0.1, 0.3)]
    for metric in (evaluation.bleu, evaluation.chrf):
        scores = [metric(hypotheses, references).score for hypotheses in levels]
        assert scores[0] == pytest.approx(100.0)
        assert scores[0] > scores[1] > scores[2]


def test_bleu_is_case_sensitive(references):
    assert evaluation.bleu([r.lower() for r in references], references).score < 90


def test_unaligned_or_empty_input_is_rejected():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        evaluation.bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one sentence"):
        evaluation.chrf([], [])


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocab_size, tokens = 50, 1234
    assert evaluation.perplexity(tokens * math.log(vocab_size), tokens) == pytest.approx(50)
    assert evaluation.perplexity(0.0, 10) == 1.0
    assert evaluation.perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError, match="positive token count"):
        evaluation.perplexity(3.0, 0)


def test_write_json_replaces_the_file_whole(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    evaluation.write_json(path, {"bleu": 1.0})
    evaluation.write_json(path, {"bleu": 35.2, "signature": "nrefs:1|tok:13a"})
    assert json.loads(path.read_text()) == {"bleu": 35.2, "signature": "nrefs:1|tok:13a"}
    with pytest.raises(TypeError):
        evaluation.write_json(path, {"bleu": object()})
    assert json.loads(path.read_text())["bleu"] == 35.2  # the failed write left it intact
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary files


def test_write_lines_keeps_sentences_aligned(tmp_path):
    path = evaluation.write_lines(tmp_path / "test.hyp", ["a man .", "", "two dogs"])
    assert path.read_text().split("\n") == ["a man .", "", "two dogs", ""]
    with pytest.raises(ValueError, match="line 1"):
        evaluation.write_lines(tmp_path / "bad.hyp", ["ok", "two\nlines"])
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        evaluation.write_translations(tmp_path, "test", ["a"], ["a", "b"])


def test_exact_match_counts_identical_sentences():
    from seq2seq.evaluation import exact_match

    assert exact_match(["a b", "c", "d e"], ["a b", "c d", "d e"]) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        exact_match(["a"], ["a", "b"])
