"""Subword tokenization with sentencepiece (Kudo & Richardson, 2018).

`SubwordTrainer` (built from `configs/tokenizer/*.yaml`) trains a unigram-LM (Kudo, 2018), BPE
(Sennrich et al., 2016) or whitespace word model on the training split only, joint over both
languages or one per side, and caches it under `cache_dir/tokenizers` keyed by a hash of the
training text and the settings. `Tokenizer` wraps the trained model(s) and is what the models,
search and checkpoints see. Every model has pad=0, unk=1, bos=2, eos=3.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm

from seq2seq.paths import TOKENIZERS

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe", "word", "char")


class Tokenizer:
    """Source and target sentencepiece models; the same model twice when `joint`.

    `encode_*` return subword ids without BOS/EOS (batching adds them); `decode_target` stops at
    the first EOS and drops pad/BOS, so raw search output can be passed in as is.
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, source_model: bytes, target_model: bytes | None = None) -> None:
        self._source_model, self._target_model = source_model, target_model
        self._source = _processor(source_model, "source")
        self._target = self._source if target_model is None else _processor(target_model, "target")

    @property
    def joint(self) -> bool:
        return self._target_model is None

    @property
    def src_vocab_size(self) -> int:
        return self._source.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self._target.get_piece_size()

    def encode_source(self, text: str) -> list[int]:
        return self._source.encode(text)

    def encode_target(self, text: str) -> list[int]:
        return self._target.encode(text)

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        return self._source.encode(list(texts), num_threads=_threads())

    def encode_targets(self, texts: Sequence[str]) -> list[list[int]]:
        return self._target.encode(list(texts), num_threads=_threads())

    def decode_target(self, ids: Sequence[int]) -> str:
        return self._target.decode(_content(ids))

    def decode_source(self, ids: Sequence[int]) -> str:
        return self._source.decode(_content(ids))

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        """One string per id, e.g. attention-plot labels."""
        return [self._source.id_to_piece(int(i)) for i in ids]

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._target.id_to_piece(int(i)) for i in ids]

    def to_bytes(self) -> dict[str, bytes | None]:
        """The serialized model protos: plain bytes, so checkpoints load with weights_only."""
        return {"source_model": self._source_model, "target_model": self._target_model}

    @classmethod
    def from_bytes(cls, state: dict[str, bytes | None]) -> Tokenizer:
        return cls(state["source_model"], state["target_model"])


def _processor(model: bytes, side: str) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor(model_proto=model)
    found = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
    if found != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
        raise ValueError(
            f"{side} sentencepiece model has pad/unk/bos/eos ids {found}, expected "
            f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}"
        )
    return processor


def _content(ids: Sequence[int]) -> list[int]:
    """The ids before the first EOS, without pad and BOS."""
    content = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            content.append(i)
    return content


def _threads() -> int:
    return min(os.cpu_count() or 1, 8)


class SubwordTrainer:
    """Trains a sentencepiece tokenizer on training text, or reuses the cached one.

    `vocab_size` is a hard limit for unigram/BPE: a corpus too small for it is an error naming
    `tokenizer.vocab_size`. `hard_vocab_limit=False` makes it an upper bound instead (the word
    config uses this, so a toy alphabet of 20 symbols gets 24 ids whatever the size asked).
    """

    def __init__(
        self,
        model_type: str = "unigram",
        vocab_size: int = 8000,
        joint: bool = True,
        character_coverage: float = 1.0,
        hard_vocab_limit: bool = True,
        input_sentence_size: int = 2_000_000,
    ) -> None:
        if model_type not in MODEL_TYPES:
            raise ValueError(f"tokenizer.model_type must be one of {MODEL_TYPES}, got {model_type}")
        if not (isinstance(vocab_size, int) and vocab_size > 4):
            raise ValueError(f"tokenizer.vocab_size must be an integer > 4, got {vocab_size}")
        if not 0 < character_coverage <= 1:
            raise ValueError(
                f"tokenizer.character_coverage must be in (0, 1], got {character_coverage}"
            )
        self.settings = {
            "model_type": model_type,
            "vocab_size": vocab_size,
            "character_coverage": character_coverage,
            "hard_vocab_limit": hard_vocab_limit,
            # corpora larger than this are sampled; WMT's 4.5M pairs need not all be read
            "input_sentence_size": input_sentence_size,
        }
        self.joint = joint

    def fit(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        cache_dir: Path,
        languages: tuple[str, str] = ("source", "target"),
    ) -> Tokenizer:
        """The tokenizer of this training text, from `cache_dir/tokenizers` when trained before.

        Model files are named by what they were trained on, e.g.
        `unigram-8000-de+en-<hash>.model` (joint) or `unigram-8000-de-<hash>.model`.
        """
        cache = Path(cache_dir) / TOKENIZERS
        src, tgt = languages
        if self.joint:
            # languages in name order, so de→en and en→de train on the same text and share it
            (first, first_lines), (second, second_lines) = sorted(
                [(src, sources), (tgt, targets)], key=lambda side: side[0]
            )
            lines = [*first_lines, *second_lines]
            return Tokenizer(self._model(lines, cache, "joint", f"{first}+{second}"))
        return Tokenizer(
            self._model(sources, cache, "source", src), self._model(targets, cache, "target", tgt)
        )

    def _model(self, lines: Sequence[str], cache: Path, side: str, text_name: str) -> bytes:
        model_type, vocab_size = self.settings["model_type"], self.settings["vocab_size"]
        path = cache / f"{model_type}-{vocab_size}-{text_name}-{self._cache_key(lines)}.model"
        if path.exists():
            log.info("reusing cached %s sentencepiece model %s", side, path)
            return path.read_bytes()
        # sentencepiece is silent while it trains (~15 s on Multi30k): say why nothing moves
        log.info("training %s sentencepiece model on %d lines...", side, len(lines))
        start = time.perf_counter()
        model = self._train(lines)
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.write_bytes(model)
        os.replace(partial, path)  # atomic: parallel runs never read a half-written model
        log.info(
            "trained %s sentencepiece model on %d lines in %.1fs: %s",
            side,
            len(lines),
            time.perf_counter() - start,
            path,
        )
        return model

    def _cache_key(self, lines: Sequence[str]) -> str:
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode())
        for line in lines:
            digest.update(line.encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]

    def _train(self, lines: Sequence[str]) -> bytes:
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=model,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                shuffle_input_sentence=True,
                num_threads=_threads(),
                minloglevel=2,
                **self.settings,
            )
        except RuntimeError as error:
            if "Vocabulary size too high" not in str(error):
                raise
            limit = str(error).rsplit("<=", 1)[-1].strip(" .")
            raise ValueError(
                f"tokenizer.vocab_size={self.settings['vocab_size']} is too large for this "
                f"training text ({len(lines)} lines allow at most {limit}); lower "
                "tokenizer.vocab_size"
            ) from None
        return model.getvalue()
