"""prepare_data and `python -m seq2seq.data` on the real Hydra configs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from seq2seq.data import PreparedData, check_data_config, prepare_data
from seq2seq.data.__main__ import main
from seq2seq.data.files import read_lines

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DATA_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_config_composes_and_builds_its_source(compose, name: str, tmp_path) -> None:
    cfg = compose(f"data={name}", f"++data.root={tmp_path}")  # ++: hub configs have no root
    check_data_config(cfg.data)
    source = instantiate(cfg.data.source, _partial_=True)()
    assert type(source) is get_class(cfg.data.source._target_)
    # every setting the source keeps under its config name arrives with the configured value
    settings = OmegaConf.to_container(cfg.data.source, resolve=True)
    kept = {key: value for key, value in settings.items() if hasattr(source, key)}
    assert kept, f"{name}: the source keeps none of its settings"
    for key, value in kept.items():
        held = getattr(source, key)
        assert (str(held) if isinstance(held, Path) else held) == value, f"data.source.{key}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.max_tokens=-5"], "data.max_tokens must be a positive integer, got -5"),
        (["data.max_length=0"], "data.max_length must be a positive integer, got 0"),
        (["data.max_tokens=2.5"], "data.max_tokens must be a positive integer, got 2.5"),
        (["data.bucket_pool=-1"], "data.bucket_pool must be 0 or a positive integer, got -1"),
        (["data.tgt_lang=de"], "data.src_lang and data.tgt_lang must differ, both are 'de'"),
        (["data.src_lang=xx"], "data.src_lang: unknown language code 'xx'"),
        (["data=tsv", "data.root=???"], r"data\.root must be set, e.g. data\.root=<value>"),
        # data.name is the data set's folder under cache_dir: no path tricks
        (["data.name=../elsewhere"], r"data\.name must be a folder name .* got '\.\./elsewhere'"),
    ],
)
def test_bad_config_values_fail_before_reading_data(compose, overrides, message, tmp_path) -> None:
    # the root does not exist: the error must come from the config check, not from reading
    cfg = compose(f"data.root={tmp_path / 'missing'}", *overrides)
    with pytest.raises(ValueError, match=message):
        prepare_data(cfg.data, cfg.tokenizer, tmp_path, seed=0)


def test_cli_language_overrides_reach_the_prepared_data(
    compose, small_multi30k: Path, small_cfg, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose(
        "data=multi30k",
        "data.src_lang=en",
        "data.tgt_lang=fr",
        f"data.root={small_multi30k}",
        "tokenizer.vocab_size=500",
        f"cache_dir={small_cfg.cache_dir}",
    )
    with caplog.at_level(logging.INFO):
        data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=0)
    assert data.sources("test") == read_lines(small_multi30k / "test_2016_flickr.en.gz")
    assert data.references("test") == read_lines(small_multi30k / "test_2016_flickr.fr")
    assert "dropped 0 of 2000 training pairs longer than data.max_length=100" in caplog.text


def test_each_set_up_step_says_what_it_does_as_it_starts(compose, tmp_path, caplog) -> None:
    """A first run on a corpus is silent for seconds to minutes without these lines."""
    cfg = compose("data=toy_copy", "data.source.train_size=50", f"cache_dir={tmp_path}")
    with caplog.at_level(logging.INFO, logger="seq2seq.data"):
        prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, cfg.seed)
    said = [record.getMessage() for record in caplog.records]
    starts = ("loading toy_copy src-tgt", "training joint sentencepiece", "encoding 1,050 pairs")
    order = [next(i for i, line in enumerate(said) if line.startswith(s)) for s in starts]
    assert order == sorted(order) and order[-1] < len(said) - 1  # encoding: before its result


def test_a_given_tokenizer_is_used_instead_of_training_one(
    small_cfg, small_data: PreparedData, tmp_path: Path
) -> None:
    cache = tmp_path / "empty_cache"
    data = prepare_data(
        small_cfg.data, small_cfg.tokenizer, cache, seed=0, tokenizer=small_data.tokenizer
    )
    assert data.tokenizer is small_data.tokenizer
    assert not (cache / "tokenizers").exists()


def test_stats_report_sizes_vocabulary_tokens_and_batches(small_data: PreparedData) -> None:
    stats = small_data.stats()
    assert {s: v["pairs"] for s, v in stats["splits"].items()} == {
        "train": 2000,
        "validation": 300,
        "test": 300,
    }
    assert stats["src_vocab_size"] == stats["tgt_vocab_size"] == 500
    for split, values in stats["splits"].items():
        tokens = sum(len(small_data.tokenizer.encode_source(s)) for s in small_data.sources(split))
        assert values["source_tokens"] == tokens
        # recounted from the batches themselves: they cover every pair once, and the padding
        # share is that of their padded (B, S) and (B, T) tensors
        batches = small_data.batches(split)
        assert values["batches"] == len(batches)
        covered = sorted(int(i) for b in batches for i in b.indices)
        assert covered == list(range(values["pairs"]))
        real = sum(b.num_src_tokens + b.num_tgt_tokens for b in batches)
        cells = sum(b.size * (b.src.size(1) + b.tgt_in.size(1)) for b in batches)
        assert values["padding"] == pytest.approx(1 - real / cells, abs=5e-5)
        assert 0 < values["padding"] < 0.5


def test_module_entry_point_prints_the_statistics(capsys, tmp_path: Path) -> None:
    stats = main(["data=toy_copy", "data.source.train_size=1000", f"cache_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert "data: toy_copy src-tgt" in out
    assert "vocabulary: 24 joint" in out
    (model,) = (tmp_path / "toy_copy" / "tokenizers").glob("*.model")
    assert f"files under {tmp_path / 'toy_copy'}:" in out
    assert f"  tokenizers/{model.name}  0." in out  # with its size in MB
    for split, values in stats["splits"].items():
        (row,) = [line.split() for line in out.splitlines() if line.startswith(split)]
        assert row[1:5] == [
            str(values[k]) for k in ("pairs", "source_tokens", "target_tokens", "batches")
        ]
    assert stats["splits"]["train"]["pairs"] == 1000


@pytest.mark.slow
def test_full_multi30k_statistics(multi30k_dir: Path, tmp_path: Path, capsys) -> None:
    stats = main([f"data.root={multi30k_dir}", f"cache_dir={tmp_path}"])
    print(capsys.readouterr().out)
    assert {s: v["pairs"] for s, v in stats["splits"].items()} == {
        "train": 29000,
        "validation": 1014,
        "test": 1000,
    }
    assert stats["src_vocab_size"] == 8000
    assert stats["splits"]["train"]["batches"] > 100
