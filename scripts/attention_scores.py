"""How far apart an RNN attention's scores lie before they are normalised, per trained run.

    python scripts/attention_scores.py runs/study/*_seed1 [--split val] [--sentences 500]

Luong's dot and general scores are unbounded products of wide states; the additive scores
(Bahdanau, concat) are bounded by v_a and their tanh. A softmax over scores whose top two lie
g apart gives the first e^g times the weight of the second, and passes almost no gradient back
to the score once g is large (the saturation Vaswani et al. 2017, §3.2.1, scale their products
against). For each run, teacher-forced on `--split` sentences one at a time (no padding), over
every target token's real source positions (its window, for local attention): the mean gap
between the two highest scores, the mean standard deviation of the scores, and the share of
tokens whose largest weight exceeds 0.99. Prints a markdown table; runs whose model has no RNN
attention (the Transformer's scores stay inside SDPA) get a row of dashes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seq2seq.data.batching import collate
from seq2seq.data.test_sets import load_split
from seq2seq.models.rnn.attention import Attention
from seq2seq.pipeline import load_trained

PEAKED = 0.99  # a token's largest weight above this counts as one-hot
COLUMNS = ("run", "top-2 score gap", "score std", f"tokens with a weight > {PEAKED}")


class ScoreRecorder:
    """Wraps `normalize` of every attention module in `model` (each variant normalises its
    scores there, over the positions its mask keeps) to sum each target token's statistics."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.tokens = 0
        self.sums = {"gap": 0.0, "std": 0.0, "peaked": 0.0}
        self.modules = [m for m in model.modules() if isinstance(m, Attention)]
        for module in self.modules:
            module.normalize = self._recording(module.normalize)

    def _recording(self, normalize):
        def recorded(scores: Tensor, mask: Tensor) -> Tensor:
            weights = normalize(scores, mask)
            last = scores.size(-1)
            self.add(
                scores.detach().float().reshape(-1, last),
                mask.expand_as(scores).reshape(-1, last),
                weights.detach().float().reshape(-1, last),
            )
            return weights

        return recorded

    def add(self, scores: Tensor, mask: Tensor, weights: Tensor) -> None:
        """Rows (N, S) of scores, the positions they normalise over, and the weights."""
        real = mask.sum(-1)
        keep = real >= 2  # a gap needs two positions
        scores, mask, weights, real = scores[keep], mask[keep], weights[keep], real[keep]
        top = scores.masked_fill(~mask, -torch.inf).topk(2, dim=-1).values
        mean = (scores * mask).sum(-1, keepdim=True) / real.unsqueeze(-1)
        variance = (((scores - mean) * mask) ** 2).sum(-1) / (real - 1)
        self.tokens += int(keep.sum())
        self.sums["gap"] += float((top[:, 0] - top[:, 1]).sum())
        self.sums["std"] += float(variance.sqrt().sum())
        self.sums["peaked"] += float((weights.max(-1).values > PEAKED).sum())


def score_statistics(model: torch.nn.Module, batches: Iterable) -> dict[str, float] | None:
    """The mean top-2 gap and standard deviation of the scores over each target token's real
    positions, and the share of tokens with a weight above PEAKED; None without RNN attention."""
    recorder = ScoreRecorder(model)
    if not recorder.modules:
        return None
    with torch.inference_mode():
        for batch in batches:
            model(batch.src, batch.src_lengths, batch.tgt_in, return_attention=True)
    return {key: total / recorder.tokens for key, total in recorder.sums.items()}


def one_at_a_time(tokenizer, sources: list[str], targets: list[str]) -> Iterable:
    source = [tokenizer.encode_source(text) for text in sources]
    target = [tokenizer.encode_target(text) for text in targets]
    for row in range(len(sources)):
        yield collate(np.array([row]), source, target)


def run_row(run: Path, split: str, sentences: int) -> list[str]:
    model, tokenizer, cfg = load_trained(run, torch.device("cpu"))
    pairs = load_split(cfg.data, split, Path(cfg.cache_dir))
    batches = one_at_a_time(tokenizer, pairs.source[:sentences], pairs.target[:sentences])
    stats = score_statistics(model, batches)
    if stats is None:
        return [run.name, "–", "–", "–"]
    return [run.name, f"{stats['gap']:.2f}", f"{stats['std']:.2f}", f"{stats['peaked']:.1%}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run directories")
    parser.add_argument("--split", default="val", help="the data set's split to read")
    parser.add_argument("--sentences", type=int, default=500, help="its first N pairs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"| {' | '.join(COLUMNS)} |")
    print(f"| {' | '.join(['---'] + ['---:'] * (len(COLUMNS) - 1))} |")
    for run in args.runs:
        print(f"| {' | '.join(run_row(run, args.split, args.sentences))} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
