"""Each data source on real or test-built files, and each kind of bad input it must name."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import datasets
import pytest
from hydra.utils import instantiate

from seq2seq.data.files import read_lines


@pytest.fixture
def load(compose, tmp_path: Path):
    """Compose the real config with overrides and load its data source."""

    def load_source(*overrides: str, cache_dir: Path | None = None) -> datasets.DatasetDict:
        cfg = compose(*overrides)
        source = instantiate(cfg.data.source, _partial_=True)()
        return source.load(cache_dir or tmp_path / "cache")

    return load_source


def write_parallel(root: Path, prefix: str, de: list[str], en: list[str]) -> None:
    (root / f"{prefix}.de").write_text("".join(f"{s}\n" for s in de), encoding="utf-8")
    (root / f"{prefix}.en").write_text("".join(f"{s}\n" for s in en), encoding="utf-8")


@pytest.fixture
def tiny_parallel(tmp_path: Path) -> Path:
    """Plain de/en files for the three Multi30k split prefixes."""
    for prefix in ("train", "val", "test_2016_flickr"):
        write_parallel(
            tmp_path,
            prefix,
            [f"{prefix} satz {i}" for i in range(4)],
            [f"{prefix} sentence {i}" for i in range(4)],
        )
    return tmp_path


# --- parallel text ---------------------------------------------------------------------------


def test_multi30k_shared_copy_loads_all_splits_aligned(load, multi30k_dir: Path) -> None:
    raw = load(f"data.root={multi30k_dir}")
    assert {s: len(raw[s]) for s in raw} == {"train": 29000, "validation": 1014, "test": 1000}
    for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test_2016_flickr")):
        german = read_lines(multi30k_dir / f"{prefix}.de.gz")
        english = read_lines(multi30k_dir / f"{prefix}.en.gz")
        assert raw[split]["source"][:] == german
        assert raw[split]["target"][:] == english


def test_plain_and_gzip_files_read_the_same(load, small_multi30k: Path, tmp_path: Path) -> None:
    for path in small_multi30k.iterdir():  # flip each file: plain <-> gzip
        data = path.read_bytes()
        if path.suffix == ".gz":
            (tmp_path / path.stem).write_bytes(gzip.decompress(data))
        else:
            (tmp_path / f"{path.name}.gz").write_bytes(gzip.compress(data))
    original = load(f"data.root={small_multi30k}")
    flipped = load(f"data.root={tmp_path}")
    for split in ("train", "validation", "test"):
        assert original[split].to_dict() == flipped[split].to_dict()
        assert len(original[split]) > 0


def test_cli_overrides_choose_languages(load, small_multi30k: Path) -> None:
    raw = load(f"data.root={small_multi30k}", "data.src_lang=en", "data.tgt_lang=fr")
    assert raw["test"]["target"][:] == read_lines(small_multi30k / "test_2016_flickr.fr")
    assert raw["test"]["source"][:] == read_lines(small_multi30k / "test_2016_flickr.en.gz")


def test_url_root_is_downloaded_once_then_read_from_the_cache(
    load, tiny_parallel: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    url = tiny_parallel.as_uri()
    with caplog.at_level(logging.INFO):
        first = load(f"data.root={url}", cache_dir=cache)
    assert sum(r.message.startswith("downloaded ") for r in caplog.records) == 6
    # the probes of `<file>.gz`, which the server lacks, say nothing of downloading
    started = [r.message for r in caplog.records if r.message.startswith("downloading ")]
    assert len(started) == 6 and not any(".gz" in message for message in started)
    for path in tiny_parallel.glob("*.*"):
        path.unlink()  # the origin is gone: only the cache can answer now
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = load(f"data.root={url}", cache_dir=cache)
    assert not any(r.message.startswith("downloaded ") for r in caplog.records)
    assert second["train"].to_dict() == first["train"].to_dict()


def test_offline_without_local_copy_says_how_to_point_root_at_a_folder(
    load, tmp_path: Path
) -> None:
    # port 9 (discard) is closed on loopback: the connection is refused at once, as offline
    with pytest.raises(
        ConnectionError, match=r"cannot download http://127\.0\.0\.1:9/.*data\.root="
    ):
        load("data.root=http://127.0.0.1:9/multi30k", cache_dir=tmp_path)


def test_parallel_files_of_different_length_name_both_files_and_counts(
    load, tiny_parallel: Path
) -> None:
    write_parallel(tiny_parallel, "val", ["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match=r"val\.de has 3 lines but .*val\.en has 2"):
        load(f"data.root={tiny_parallel}")


def test_missing_language_file_names_paths_tried_and_languages_found(
    load, tiny_parallel: Path
) -> None:
    with pytest.raises(FileNotFoundError, match=r"tried .*train\.fr\.gz, .*train\.fr;.*: de, en"):
        load(f"data.root={tiny_parallel}", "data.tgt_lang=fr")


def test_missing_split_names_the_file_prefix(load, tiny_parallel: Path) -> None:
    (tiny_parallel / "val.de").unlink()
    with pytest.raises(FileNotFoundError, match=r"val\.de\.gz, .*val\.de;"):
        load(f"data.root={tiny_parallel}")


def test_missing_root_folder_names_the_key(load, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.root: .*nowhere is not a folder"):
        load(f"data.root={tmp_path / 'nowhere'}")


def test_unknown_language_code_lists_the_known_ones(load, tiny_parallel: Path) -> None:
    with pytest.raises(
        ValueError, match=r"data\.src_lang: unknown language code 'xx'.*cs, de, en, fr"
    ):
        load(f"data.root={tiny_parallel}", "data.src_lang=xx")


def test_non_utf8_line_names_file_and_line(load, tiny_parallel: Path) -> None:
    (tiny_parallel / "train.en").write_bytes(b"one\ntwo\nthr\xe9e\nfour\n")
    with pytest.raises(ValueError, match=r"train\.en:3: not valid UTF-8"):
        load(f"data.root={tiny_parallel}")


def test_empty_training_lines_are_dropped_with_their_line_in_the_log(
    load, tiny_parallel: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_parallel(tiny_parallel, "train", ["a", "", "c", "d"], ["A", "B", "  ", "D"])
    write_parallel(tiny_parallel, "val", ["a", ""], ["A", "B"])
    with caplog.at_level(logging.WARNING):
        raw = load(f"data.root={tiny_parallel}")
    assert raw["train"]["source"][:] == ["a", "d"]
    assert (
        "dropped 2 training pairs with an empty side: line 2 of train.de/train.en; line 3"
        in caplog.text
    )
    assert raw["validation"]["source"][:] == ["a", ""], "held-out splits are never filtered"


# --- Hugging Face hub schema -----------------------------------------------------------------


def write_translation_jsonl(root: Path, split: str, rows: list[tuple[str, str]]) -> None:
    root.mkdir(exist_ok=True)
    with (root / f"{split}.jsonl").open("w", encoding="utf-8") as f:
        for i, (de, en) in enumerate(rows):
            f.write(json.dumps({"id": str(i), "translation": {"de": de, "en": en}}) + "\n")


def hub_rows(split: str, n: int) -> list[tuple[str, str]]:
    return [(f"{split} satz {i}", f"{split} sentence {i}") for i in range(n)]


@pytest.mark.parametrize("direction", [("de", "en"), ("en", "de")])
def test_hub_translation_column_maps_to_source_target(load, tmp_path: Path, direction) -> None:
    for split, n in (("train", 20), ("validation", 5), ("test", 6)):
        write_translation_jsonl(tmp_path / "hub", split, hub_rows(split, n))
    src, tgt = direction
    raw = load(
        "data=wmt14_de_en",
        f"data.source.path={tmp_path / 'hub'}",
        "data.source.name=null",
        f"data.src_lang={src}",
        f"data.tgt_lang={tgt}",
        cache_dir=tmp_path / "cache",
    )
    assert {s: len(raw[s]) for s in raw} == {"train": 20, "validation": 5, "test": 6}
    assert raw["test"].column_names == ["source", "target"]
    expected = dict(zip(("de", "en"), zip(*hub_rows("test", 6))))
    assert raw["test"]["source"][:] == list(expected[src])
    assert raw["test"]["target"][:] == list(expected[tgt])


def test_hub_schema_saved_to_disk_with_translation_feature(load, tmp_path: Path) -> None:
    features = datasets.Features({"translation": datasets.Translation(languages=["de", "en"])})
    splits = {
        split: datasets.Dataset.from_dict(
            {"translation": [{"de": de, "en": en} for de, en in hub_rows(split, 8)]},
            features=features,
        )
        for split in ("train", "validation", "test")
    }
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))
    raw = load(
        "data=iwslt2017_de_en",
        f"data.source.path={tmp_path / 'saved'}",
        "data.source.name=null",
        cache_dir=tmp_path / "cache",
    )
    assert raw["validation"]["source"][:] == [de for de, _ in hub_rows("validation", 8)]
    assert raw["validation"]["target"][:] == [en for _, en in hub_rows("validation", 8)]


def test_hub_without_validation_split_is_an_error_naming_the_fraction_key(
    load, tmp_path: Path
) -> None:
    write_translation_jsonl(tmp_path / "hub", "train", hub_rows("train", 20))
    with pytest.raises(
        ValueError,
        match=r"no 'validation' split \(it has: train\); set data\.source\.validation_fraction",
    ):
        load(
            "data=wmt14_de_en",
            f"data.source.path={tmp_path / 'hub'}",
            "data.source.name=null",
            cache_dir=tmp_path / "c",
        )


def test_hub_held_out_fractions_split_train_deterministically(load, tmp_path: Path) -> None:
    write_translation_jsonl(tmp_path / "hub", "train", hub_rows("train", 200))
    overrides = (
        "data=opus_books",
        f"data.source.path={tmp_path / 'hub'}",
        "data.source.name=null",
        "data.src_lang=de",
        "data.tgt_lang=en",
        "data.source.validation_fraction=0.1",
        "data.source.test_fraction=0.05",
    )
    raw = load(*overrides, cache_dir=tmp_path / "c")
    again = load(*overrides, cache_dir=tmp_path / "c")
    sizes = {s: len(raw[s]) for s in raw}
    assert sizes == {"train": 171, "validation": 20, "test": 9}
    parts = [set(raw[s]["source"][:]) for s in ("train", "validation", "test")]
    assert set.union(*parts) == {de for de, _ in hub_rows("train", 200)}
    assert sum(map(len, parts)) == 200, "held-out pairs must leave train"
    for split in raw:
        assert raw[split].to_dict() == again[split].to_dict()


def test_hub_unknown_language_lists_available(load, tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        write_translation_jsonl(tmp_path / "hub", split, hub_rows(split, 3))
    with pytest.raises(
        ValueError, match=r"data\.tgt_lang: unknown language code 'fr'.*available: de, en"
    ):
        load(
            "data=wmt14_de_en",
            f"data.source.path={tmp_path / 'hub'}",
            "data.source.name=null",
            "data.tgt_lang=fr",
            cache_dir=tmp_path / "c",
        )


def test_hub_config_name_with_a_local_folder_says_to_clear_it(load, tmp_path: Path) -> None:
    write_translation_jsonl(tmp_path / "hub", "train", hub_rows("train", 3))
    with pytest.raises(ValueError, match=r"is a local folder.*set data\.source\.name=null"):
        load("data=wmt14_de_en", f"data.source.path={tmp_path / 'hub'}")


# --- local TSV and JSON lines ----------------------------------------------------------------


def test_tsv_by_index_and_by_header(load, tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.tsv").write_text(
            f"id\tde\ten\n1\t{split} eins\t{split} one\n2\t{split} zwei\t{split} two\n"
        )
    raw = load(
        "data=tsv",
        f"data.root={tmp_path}",
        "data.source.source_column=2",
        "data.source.target_column=1",
    )
    assert raw["train"]["source"][:] == [
        "en",
        "train one",
        "train two",
    ]  # no header: line 1 is data
    raw = load(
        "data=tsv",
        f"data.root={tmp_path}",
        "data.source.source_column=de",
        "data.source.target_column=en",
    )
    assert raw["validation"]["source"][:] == ["validation eins", "validation zwei"]
    assert raw["validation"]["target"][:] == ["validation one", "validation two"]


def test_tsv_short_line_names_file_and_line(load, tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.tsv").write_text("a\tb\nc\td\n")
    (tmp_path / "test.tsv").write_text("a\tb\nc d\n")
    with pytest.raises(
        ValueError, match=r"test\.tsv:2: expected at least 2 tab-separated columns, got 1"
    ):
        load("data=tsv", f"data.root={tmp_path}")


def test_jsonl_with_dotted_fields(load, tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        write_translation_jsonl(tmp_path, split, hub_rows(split, 3))
    raw = load(
        "data=jsonl",
        f"data.root={tmp_path}",
        "data.source.source_field=translation.en",
        "data.source.target_field=translation.de",
    )
    assert raw["train"]["source"][:] == [en for _, en in hub_rows("train", 3)]
    assert raw["train"]["target"][:] == [de for de, _ in hub_rows("train", 3)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"source": "a", "target": ', r"train\.jsonl:2: invalid JSON"),
        ('{"source": "a"}', r"train\.jsonl:2: no field 'target'"),
        ('{"source": "a", "target": 5}', r"train\.jsonl:2: field 'target' is int"),
    ],
)
def test_jsonl_bad_record_names_file_and_line(
    load, tmp_path: Path, line: str, message: str
) -> None:
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text('{"source": "a", "target": "b"}\n')
    (tmp_path / "train.jsonl").write_text('{"source": "a", "target": "b"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        load("data=jsonl", f"data.root={tmp_path}")


def test_local_file_source_names_the_missing_split_file(load, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"source": "a", "target": "b"}\n')
    with pytest.raises(
        FileNotFoundError, match=r"no validation file: .*validation\.jsonl does not exist"
    ):
        load("data=jsonl", f"data.root={tmp_path}")
