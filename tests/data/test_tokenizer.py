"""Sentencepiece tokenizer: special ids, decoding, serialisation, caching, vocabulary limits."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from seq2seq.data import PreparedData, SubwordTrainer, Tokenizer


def trainer(compose, *overrides: str) -> SubwordTrainer:
    return instantiate(compose(*overrides).tokenizer, _partial_=True)()


def test_special_ids_are_the_ones_models_use(small_data: PreparedData) -> None:
    tok = small_data.tokenizer
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.source_pieces([0, 1, 2, 3]) == ["<pad>", "<unk>", "<s>", "</s>"]
    assert tok.joint and tok.src_vocab_size == tok.tgt_vocab_size == 500


def test_encode_decode_round_trip_on_real_sentences(small_data: PreparedData) -> None:
    tok = small_data.tokenizer
    references = small_data.references("test")[:50]
    decoded = [tok.decode_target(tok.encode_target(s)) for s in references]
    assert decoded == references
    specials = {tok.pad_id, tok.bos_id, tok.eos_id}  # batching adds these, encoding must not
    assert not any(specials & set(tok.encode_source(s)) for s in small_data.sources("test"))


def test_decode_target_stops_at_eos_and_drops_pad_and_bos(small_data: PreparedData) -> None:
    tok = small_data.tokenizer
    sentence = small_data.references("validation")[0]
    ids = tok.encode_target(sentence)
    noisy = [tok.bos_id, *ids[:2], tok.pad_id, *ids[2:], tok.eos_id, *ids, tok.pad_id]
    assert tok.decode_target(noisy) == sentence
    assert tok.decode_target(torch.tensor(noisy)) == sentence


def test_serialised_tokenizer_survives_a_weights_only_checkpoint(small_data: PreparedData) -> None:
    buffer = io.BytesIO()
    torch.save({"tokenizer": small_data.tokenizer.to_bytes()}, buffer)
    buffer.seek(0)
    restored = Tokenizer.from_bytes(torch.load(buffer, weights_only=True)["tokenizer"])
    for sentence in small_data.sources("test")[:20]:
        assert restored.encode_source(sentence) == small_data.tokenizer.encode_source(sentence)
    assert restored.joint and restored.src_vocab_size == 500


def test_second_fit_reuses_the_cached_model(
    compose, small_data: PreparedData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources, targets = small_data.sources("train"), small_data.references("train")
    fit = trainer(compose, "tokenizer.vocab_size=300")
    with caplog.at_level(logging.INFO):
        fit.fit(sources, targets, tmp_path)
    (model,) = (tmp_path / "tokenizers").glob("*.model")
    modified = model.stat().st_mtime_ns
    assert "trained joint sentencepiece model" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = trainer(compose, "tokenizer.vocab_size=300").fit(sources, targets, tmp_path)
    assert f"reusing cached joint sentencepiece model {model}" in caplog.text
    assert "trained" not in caplog.text
    assert model.stat().st_mtime_ns == modified
    assert again.src_vocab_size == 300
    # other text or other settings must not hit the same cache entry
    trainer(compose, "tokenizer.vocab_size=300").fit(sources[:-1], targets[:-1], tmp_path)
    trainer(compose, "tokenizer=bpe", "tokenizer.vocab_size=300").fit(sources, targets, tmp_path)
    assert len(list((tmp_path / "tokenizers").glob("*.model"))) == 3


def test_separate_vocabularies_train_one_model_per_side(
    compose, small_data: PreparedData, tmp_path: Path
) -> None:
    fit = trainer(compose, "tokenizer.joint=false", "tokenizer.vocab_size=300")
    tok = fit.fit(small_data.sources("train"), small_data.references("train"), tmp_path)
    assert not tok.joint and tok.src_vocab_size == tok.tgt_vocab_size == 300
    assert len(list((tmp_path / "tokenizers").glob("*.model"))) == 2
    german = small_data.sources("test")[0]
    assert tok.encode_source(german) != tok.encode_target(german)
    restored = Tokenizer.from_bytes(tok.to_bytes())
    assert restored.encode_target(german) == tok.encode_target(german)


def test_vocabulary_too_large_for_the_corpus_names_the_key(compose, tmp_path: Path) -> None:
    lines = ["ein kleiner satz", "noch ein satz"] * 10
    with pytest.raises(ValueError, match=r"tokenizer\.vocab_size=8000 is too large .* at most \d+"):
        trainer(compose).fit(lines, lines, tmp_path)


def test_word_model_caps_the_vocabulary_at_the_words_seen(compose, tmp_path: Path) -> None:
    tok = trainer(compose, "tokenizer=word").fit(["a b c", "c d"], ["e f", "f g a"], tmp_path)
    assert tok.src_vocab_size == 4 + 7
    assert tok.encode_source("a b z") == [*tok.encode_source("a b"), tok.unk_id]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tokenizer.vocab_size=0", r"tokenizer\.vocab_size must be an integer > 4, got 0"),
        ("tokenizer.model_type=wordpiece", r"tokenizer\.model_type must be one of"),
        ("tokenizer.character_coverage=1.5", r"tokenizer\.character_coverage must be in"),
    ],
)
def test_bad_tokenizer_settings_name_the_key(compose, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trainer(compose, override)
