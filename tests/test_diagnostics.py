"""Attention diagnostics (`attn_*` validation metrics) on hand-made attention matrices."""

from __future__ import annotations

import math

import pytest
import torch
from support import compose_model

from seq2seq.diagnostics import AttentionDiagnostics, spearman
from seq2seq.pipeline import build_model


def diagnose(weights, src_lengths, tgt_lengths, centers=None) -> dict[str, float]:
    diagnostics = AttentionDiagnostics()
    diagnostics.add(
        torch.tensor(weights, dtype=torch.float32),
        torch.tensor(src_lengths),
        torch.tensor(tgt_lengths),
        None if centers is None else torch.tensor(centers, dtype=torch.float32),
    )
    return diagnostics.result()


def test_one_hot_diagonal_attention():
    # 3 source tokens (EOS last), 3 target tokens (EOS last), each on its own source token
    result = diagnose([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], [3], [3])
    assert result == {
        "attn_entropy": 0.0,
        "attn_monotonicity": 1.0,
        "attn_eos_share": pytest.approx(1 / 3),  # the target EOS attends to the source EOS
        "attn_uncovered": 0.0,
    }


def test_uniform_attention_and_padding():
    # sentence 1: 4 source, 2 target tokens, uniform; sentence 2 padded to the same shape:
    # 2 source, 1 target token; its padding rows and columns must not count
    uniform = [[0.25] * 4, [0.25] * 4]
    padded = [[0.5, 0.5, 0, 0], [9, 9, 9, 9]]
    result = diagnose([uniform, padded], [4, 2], [2, 1])
    assert result["attn_entropy"] == pytest.approx((2 * math.log(4) + math.log(2)) / 3)
    assert result["attn_eos_share"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    # sentence 1's sources get 0.5 each (not below 0.5), sentence 2's get 0.5 each too
    assert result["attn_uncovered"] == 0.0
    assert math.isnan(result["attn_monotonicity"])  # argmax constant / one token: undefined


def test_uncovered_source_tokens_and_reversed_order():
    # the target attends to source tokens 2, 1, 0 in turn: token 3 (EOS) never gets any
    weights = [[[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]]
    result = diagnose(weights, [4], [3])
    assert result["attn_monotonicity"] == pytest.approx(-1.0)
    assert result["attn_uncovered"] == pytest.approx(1 / 4)
    assert result["attn_eos_share"] == 0.0


def test_weights_that_sum_below_one_are_renormalised_for_entropy_and_eos_share():
    result = diagnose([[[0.1, 0.1], [0.0, 0.4]]], [2], [2])  # local-p's Gaussian scales rows
    assert result["attn_entropy"] == pytest.approx(math.log(2) / 2)
    assert result["attn_eos_share"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["attn_uncovered"] == 0.5  # columns sum to 0.1 and 0.5: only the first is below


def test_center_distance_only_with_centers():
    weights = [[[1, 0, 0], [0, 0, 1]]]
    assert "attn_center_distance" not in diagnose(weights, [3], [2])
    result = diagnose(weights, [3], [2], centers=[[0.5, 0.0]])
    assert result["attn_center_distance"] == pytest.approx((0.5 + 2.0) / 2)


def test_spearman_with_ties_matches_hand_computed_ranks():
    # positions 0, 0, 1: ranks 1.5, 1.5, 3 against 1, 2, 3 -> rho = 0.866
    assert spearman([0, 0, 1]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([2]))


@pytest.mark.parametrize(
    "overrides", [("model/attention=luong_local_p",), ("model/attention=luong_local_m",)]
)
def test_local_attention_reports_its_window_centres(overrides):
    model = build_model_cfg(*overrides)
    src, lengths = torch.randint(4, 30, (2, 6)), torch.tensor([6, 4])
    tgt = torch.randint(4, 30, (2, 5))
    output = model(src, lengths, tgt, return_attention=True)
    assert output.attention_centers.shape == (2, 5)
    assert output.attention_centers.max() <= 6


def build_model_cfg(*overrides: str):
    cfg = compose_model("model=rnn", *overrides).copy()
    cfg.hidden_size, cfg.embedding_size = 8, 8

    class Vocab:
        src_vocab_size = tgt_vocab_size = 30
        pad_id = 0

    torch.manual_seed(0)
    return build_model(cfg, Vocab()).eval()
