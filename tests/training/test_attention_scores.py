"""scripts/attention_scores.py: the spread of an RNN attention's scores before normalisation,
checked against the weights the model returns (a softmax's top two weights have the ratio
e^gap of their scores)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate
from support import REPO, compose_model

from seq2seq.data.batching import collate

SCRIPT = REPO / "scripts" / "attention_scores.py"
spec = importlib.util.spec_from_file_location("attention_scores", SCRIPT)
attention_scores = importlib.util.module_from_spec(spec)
spec.loader.exec_module(attention_scores)

SOURCES = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17]]
TARGETS = [[7, 8, 9], [10, 11, 12, 13, 14], [15, 16]]


def luong_general(*overrides: str, sharpen: float = 1.0) -> torch.nn.Module:
    """A small untrained RNN with Luong's general score, W_a multiplied by `sharpen`."""
    cfg = compose_model(
        "model=rnn",
        "model/attention=luong_general",
        "model.hidden_size=16",
        "model.embedding_size=8",
        "model.dropout=0.0",
        *overrides,
    )
    torch.manual_seed(0)
    model = instantiate(cfg, src_vocab_size=20, tgt_vocab_size=20, pad_id=0).eval()
    with torch.no_grad():
        model.decoder.attention.key_layer.weight.mul_(sharpen)
    return model


def batches(targets: list[list[int]] = TARGETS) -> list:
    return [collate([row], SOURCES, targets) for row in range(len(SOURCES))]


def first_steps() -> list:
    """Only the first target step (BOS in): its query does not depend on earlier attention
    (Luong's input feeding), so its scores are linear in W_a."""
    return batches(targets=[[] for _ in SOURCES])


def from_returned_weights(model: torch.nn.Module) -> tuple[float, float]:
    """Mean log(w1 / w2) of the top two weights, and the share of rows above PEAKED, from the
    attention the model returns."""
    ratios, peaked = [], []
    with torch.inference_mode():
        for batch in batches():
            weights = model(batch.src, batch.src_lengths, batch.tgt_in, return_attention=True)
            top = weights.attention[0].double().topk(2, dim=-1).values  # (T, 2)
            ratios += (top[:, 0] / top[:, 1]).log().tolist()
            peaked += (top[:, 0] > attention_scores.PEAKED).tolist()
    return sum(ratios) / len(ratios), sum(peaked) / len(peaked)


@pytest.mark.parametrize("sharpen", [1.0, 6.0])
def test_the_top_two_gap_is_the_log_ratio_of_the_softmax_weights(sharpen: float):
    model = luong_general(sharpen=sharpen)
    stats = attention_scores.score_statistics(model, batches())
    gap, peaked = from_returned_weights(luong_general(sharpen=sharpen))
    assert stats["gap"] == pytest.approx(gap, rel=1e-4)
    assert stats["peaked"] == pytest.approx(peaked)
    assert stats["std"] > 0


def test_a_sharper_product_spreads_the_scores_and_peaks_the_weights():
    mild = attention_scores.score_statistics(luong_general(), first_steps())
    sharp = attention_scores.score_statistics(luong_general(sharpen=60.0), first_steps())
    assert sharp["gap"] == pytest.approx(60 * mild["gap"], rel=1e-4)  # linear in W_a
    assert sharp["std"] == pytest.approx(60 * mild["std"], rel=1e-4)
    assert mild["peaked"] == 0 < sharp["peaked"]


def test_the_scaled_score_spreads_by_the_root_of_the_width_less():
    plain = attention_scores.score_statistics(luong_general(), first_steps())
    scaled = attention_scores.score_statistics(
        luong_general("model.attention.scaled=true"), first_steps()
    )
    assert scaled["gap"] == pytest.approx(plain["gap"] / math.sqrt(16), rel=1e-4)


def test_a_transformer_run_gets_a_row_of_dashes(trained_run):
    table = subprocess.run(
        [sys.executable, str(SCRIPT), str(trained_run), "--split", "test", "--sentences", "5"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.splitlines()
    assert table[0].startswith("| run | top-2 score gap | score std |")
    assert table[2] == f"| {trained_run.name} | – | – | – |"
