"""Token-budget batching: budget, coverage, reproducible shuffling, masks, filtering, errors."""

from __future__ import annotations

import pytest
import torch

from seq2seq.data import Batch, PreparedData, batch_sources

MAX_TOKENS = 600


@pytest.fixture(scope="module")
def data(small_data: PreparedData) -> PreparedData:
    """The small Multi30k slice with a tight length limit, so some pairs are dropped."""
    return PreparedData(small_data.raw, small_data.tokenizer, MAX_TOKENS, max_length=25, seed=7)


def cost(batch: Batch) -> int:
    return batch.size * (batch.src.size(1) + batch.tgt_in.size(1))


def row_order(batches: list[Batch]) -> list[int]:
    return torch.cat([b.indices for b in batches]).tolist()


def test_every_batch_fits_the_token_budget(data: PreparedData) -> None:
    for split in ("train", "validation", "test"):
        batches = data.batches(split)
        assert all(cost(b) <= MAX_TOKENS for b in batches)
        assert len(batches) > 1


def test_each_kept_training_pair_appears_exactly_once_per_epoch(data: PreparedData) -> None:
    tok = data.tokenizer
    kept = [
        row
        for row, (s, t) in enumerate(zip(data.sources("train"), data.references("train")))
        if len(tok.encode_source(s)) <= 25 and len(tok.encode_target(t)) <= 25
    ]
    assert 0 < len(kept) < len(data.raw["train"]), "the fixture must drop some pairs"
    for epoch in (0, 1):
        assert sorted(row_order(data.batches("train", epoch))) == kept


def test_over_long_pairs_are_dropped_from_training_and_counted(data: PreparedData) -> None:
    stats = data.stats()
    assert data.dropped == stats["train_pairs_dropped_too_long"] > 0
    assert stats["train_pairs_kept"] + data.dropped == len(data.raw["train"])
    longest = max(max(b.src_lengths.max(), b.tgt_lengths.max()) for b in data.batches("train"))
    assert longest <= 25 + 1  # + EOS


def test_shuffling_is_reproducible_from_seed_and_epoch(data: PreparedData) -> None:
    first, again = data.batches("train", epoch=3), data.batches("train", epoch=3)
    assert row_order(first) == row_order(again)
    assert [b.indices.tolist() for b in first] == [b.indices.tolist() for b in again]
    assert row_order(data.batches("train", epoch=4)) != row_order(first)
    reseeded = PreparedData(data.raw, data.tokenizer, MAX_TOKENS, max_length=25, seed=8)
    assert row_order(reseeded.batches("train", epoch=3)) != row_order(first)


def partners(batches: list[Batch]) -> dict[int, set[int]]:
    """Each training pair's batch-mates."""
    mates = {}
    for batch in batches:
        rows = set(batch.indices.tolist())
        mates.update((row, rows - {row}) for row in rows)
    return mates


def share_of_partners_kept(data: PreparedData) -> float:
    """Of each pair's batch-mates in epoch 0, the share that meet it again in epoch 1."""
    before, after = partners(data.batches("train", 0)), partners(data.batches("train", 1))
    kept = sum(len(before[row] & after[row]) for row in before)
    return kept / sum(len(mates) for mates in before.values())


def padding_share(batches: list[Batch]) -> float:
    real = sum(b.num_src_tokens + b.num_tgt_tokens for b in batches)
    return 1 - real / sum(cost(b) for b in batches)


def test_pooled_bucketing_mixes_partners_and_keeps_batches_tight(data: PreparedData) -> None:
    one_pool = data  # bucket_pool=0: the whole corpus sorted at once
    pooled = PreparedData(data.raw, data.tokenizer, MAX_TOKENS, 25, seed=7, bucket_pool=4)
    assert 0 < pooled.pool_size < len(pooled.train_rows)
    for epoch in (0, 1):
        assert sorted(row_order(pooled.batches("train", epoch))) == sorted(data.train_rows)
        assert all(cost(b) <= MAX_TOKENS for b in pooled.batches("train", epoch))
    # one sorted corpus keeps pairs of equal length together every epoch; pools do not
    assert share_of_partners_kept(one_pool) > 2 * share_of_partners_kept(pooled)
    padding = padding_share(pooled.batches("train"))
    assert padding_share(one_pool.batches("train")) < padding < 0.25


def length_ranges_overlap(batches: list[Batch]) -> bool:
    """Whether two batches' pair lengths (the longer side) interleave, as batches cut from
    separately sorted pools do."""
    longer = [torch.maximum(b.src_lengths, b.tgt_lengths) for b in batches]
    ranges = sorted((side.min().item(), side.max().item()) for side in longer)
    return any(low < previous_high for (_, previous_high), (low, _) in zip(ranges, ranges[1:]))


def test_bucket_pool_of_zero_cuts_one_sorted_corpus(data: PreparedData) -> None:
    pooled = PreparedData(data.raw, data.tokenizer, MAX_TOKENS, 25, seed=7, bucket_pool=4)
    assert not length_ranges_overlap(data.batches("train"))
    assert length_ranges_overlap(pooled.batches("train"))


def test_tensors_and_masks_match_the_encoded_sentences(data: PreparedData) -> None:
    tok = data.tokenizer
    sources, targets = data.sources("validation"), data.references("validation")
    for batch in data.batches("validation")[:5]:
        assert batch.src_mask.sum().item() == batch.num_src_tokens
        assert batch.tgt_mask.sum().item() == batch.num_tgt_tokens
        for r, row in enumerate(batch.indices.tolist()):
            x, y = tok.encode_source(sources[row]), tok.encode_target(targets[row])
            s, t = batch.src_lengths[r].item(), batch.tgt_lengths[r].item()
            assert (s, t) == (len(x) + 1, len(y) + 1)
            assert batch.src[r, :s].tolist() == [*x, tok.eos_id]
            assert batch.tgt_in[r, :t].tolist() == [tok.bos_id, *y]
            assert batch.tgt_out[r, :t].tolist() == [*y, tok.eos_id]
            assert batch.src_mask[r].tolist() == [True] * s + [False] * (batch.src.size(1) - s)
            assert batch.tgt_mask[r].tolist() == [True] * t + [False] * (batch.tgt_in.size(1) - t)
            for padded in (batch.src[r, s:], batch.tgt_in[r, t:], batch.tgt_out[r, t:]):
                assert (padded == tok.pad_id).all()


@pytest.mark.parametrize("split", ["validation", "test"])
def test_held_out_batches_are_unfiltered_length_sorted_and_restorable(
    data: PreparedData, split: str
) -> None:
    batches = data.batches(split)
    order = row_order(batches)
    assert sorted(order) == list(range(len(data.raw[split])))
    lengths = torch.cat([b.src_lengths for b in batches]).tolist()
    assert lengths == sorted(lengths, reverse=True)
    assert max(lengths) > 25 + 1, "long held-out pairs must be kept"
    # what a caller does with outputs produced in batch order: put each back at its index
    tok, restored = data.tokenizer, [""] * len(order)
    for batch in batches:
        for src, row in zip(batch.src.tolist(), batch.indices.tolist()):
            restored[row] = tok.decode_source(src)
    assert restored == [tok.decode_source(tok.encode_source(s)) for s in data.sources(split)]
    assert row_order(data.batches(split)) == order


def test_a_pair_too_long_for_max_tokens_names_the_key(data: PreparedData) -> None:
    tight = PreparedData(data.raw, data.tokenizer, max_tokens=40, max_length=100, seed=0)
    with pytest.raises(ValueError, match=r"data\.max_tokens=40 cannot hold validation pair \d+"):
        tight.batches("validation")


def test_nothing_left_after_filtering_is_an_error(data: PreparedData) -> None:
    with pytest.raises(ValueError, match=r"no training pairs left: .*data\.max_length=2"):
        PreparedData(data.raw, data.tokenizer, MAX_TOKENS, max_length=2, seed=0)


def test_batch_sources_batches_plain_sentences_for_translation(data: PreparedData) -> None:
    sentences = data.sources("test")[:100]
    batches = batch_sources(data.tokenizer, sentences, max_tokens=300)
    assert sorted(row_order(batches)) == list(range(100))
    for batch in batches:
        assert batch.size * batch.src.size(1) <= 300
        assert batch.tgt_in.shape == batch.tgt_out.shape == (batch.size, 0)
        for r, row in enumerate(batch.indices.tolist()):
            ids = data.tokenizer.encode_source(sentences[row])
            assert batch.src[r, : len(ids) + 1].tolist() == [*ids, data.tokenizer.eos_id]
    with pytest.raises(ValueError, match=r"max_tokens=5 cannot hold sentence \d+"):
        batch_sources(data.tokenizer, sentences, max_tokens=5)
