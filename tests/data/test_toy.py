"""Toy tasks: correct targets, deterministic, disjoint splits, one token per symbol."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from seq2seq.data import prepare_data
from seq2seq.data.toy import CopyTask, ToyTask

TRANSFORMS = {"toy_copy": lambda s: s, "toy_reverse": lambda s: s[::-1]}


def toy(compose, name: str, *overrides: str) -> ToyTask:
    return instantiate(compose(f"data={name}", *overrides).data.source, _partial_=True)()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_targets_follow_the_task_and_sizes_lengths_alphabet_match_config(compose, name) -> None:
    cfg = compose(f"data={name}").data.source
    raw = toy(compose, name).load()
    assert {s: len(raw[s]) for s in raw} == {
        "train": cfg.train_size,
        "validation": cfg.validation_size,
        "test": cfg.test_size,
    }
    symbols = set()
    for split in raw:
        for source, target in zip(raw[split]["source"], raw[split]["target"]):
            tokens = source.split(" ")
            assert target.split(" ") == TRANSFORMS[name](tokens)
            assert cfg.min_length <= len(tokens) <= cfg.max_length
            symbols.update(tokens)
    assert len(symbols) == cfg.alphabet_size


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_generation_is_deterministic_from_the_data_seed(compose, name) -> None:
    small = ("data.source.train_size=300", "data.source.validation_size=50")
    first, again = toy(compose, name, *small).load(), toy(compose, name, *small).load()
    other = toy(compose, name, *small, "data.source.seed=1").load()
    for split in first:
        assert first[split].to_dict() == again[split].to_dict()
    assert first["train"]["source"][:] != other["train"]["source"][:]


def test_held_out_splits_do_not_overlap_training() -> None:
    # a tiny space (4 letters, length 2..3: 80 sentences) makes collisions likely if unchecked
    task = CopyTask(
        alphabet_size=4, min_length=2, max_length=3, train_size=60, validation_size=10, test_size=10
    )
    raw = task.load()
    splits = [set(raw[s]["source"][:]) for s in ("train", "validation", "test")]
    assert sum(map(len, splits)) == 80 == len(set.union(*splits))


def test_too_many_sentences_for_the_alphabet_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 12 distinct sentences exist .* fewer than the 15"):
        CopyTask(
            alphabet_size=2,
            min_length=2,
            max_length=3,
            train_size=5,
            validation_size=5,
            test_size=5,
        )


def test_toy_config_selects_the_word_tokenizer_unless_overridden(compose) -> None:
    assert compose("data=toy_copy").tokenizer.model_type == "word"
    assert compose("data=toy_reverse").tokenizer.model_type == "word"
    assert compose().tokenizer.model_type == "unigram"
    assert compose("data=toy_copy", "tokenizer=bpe").tokenizer.model_type == "bpe"


def test_each_symbol_is_one_token(compose, tmp_path: Path) -> None:
    cfg = compose("data=toy_reverse", "data.source.train_size=500", f"cache_dir={tmp_path}")
    data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=0)
    assert data.tokenizer.src_vocab_size == cfg.data.source.alphabet_size + 4  # + pad/unk/bos/eos
    for source, target in zip(data.sources("test"), data.references("test")):
        ids = data.tokenizer.encode_source(source)
        assert len(ids) == len(source.split(" "))
        assert data.tokenizer.unk_id not in ids
        assert data.tokenizer.decode_target(data.tokenizer.encode_target(target)) == target
