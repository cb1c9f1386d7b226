"""Where data lives: data/ of the checkout by default, one folder per data set, shared by runs,
ignored by git, emptied by `make clean-data`, and every data set described in data/README.md."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import support

from seq2seq.data import prepare_data
from seq2seq.paths import checkout_root, data_home

REPO = support.REPO


def test_cache_dir_is_the_checkouts_data_folder_unless_moved(
    compose, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEQ2SEQ_CACHE", raising=False)
    assert checkout_root() == REPO
    assert compose().cache_dir == str(REPO / "data")
    assert support.compose_config("evaluate", "checkpoint=x").cache_dir == str(REPO / "data")
    assert compose(f"cache_dir={tmp_path}").cache_dir == str(tmp_path)
    monkeypatch.setenv("SEQ2SEQ_CACHE", str(tmp_path / "elsewhere"))
    assert compose().cache_dir == str(tmp_path / "elsewhere")


def test_an_installed_package_keeps_its_data_in_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "site-packages" / "seq2seq"  # no pyproject.toml beside it
    package.mkdir(parents=True)
    monkeypatch.delenv("SEQ2SEQ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert checkout_root(package) is None
    assert data_home(package) == tmp_path / "home" / ".cache" / "seq2seq"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home(package) == tmp_path / "xdg" / "seq2seq"


def _prepare(compose, root: Path, cache: Path, *overrides: str):
    cfg = compose(
        f"data.root={root.as_uri()}", "tokenizer.vocab_size=500", f"cache_dir={cache}", *overrides
    )
    return prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=0)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.*")}


def test_a_second_run_reuses_the_downloads_and_the_tokenizer(
    compose, small_multi30k: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, home = tmp_path / "data", tmp_path / "data" / "multi30k"
    with caplog.at_level(logging.INFO):
        first = _prepare(compose, small_multi30k, cache)
    assert caplog.text.count("downloaded file://") == 6  # de and en of three splits
    assert "trained joint sentencepiece model" in caplog.text
    files = _files(home)
    assert sorted(_without_hashes(f) for f in files) == [
        "downloads/<url hash>-test_2016_flickr.de",
        "downloads/<url hash>-test_2016_flickr.en.gz",
        "downloads/<url hash>-train.de",
        "downloads/<url hash>-train.en.gz",
        "downloads/<url hash>-val.de",
        "downloads/<url hash>-val.en.gz",
        "tokenizers/unigram-500-de+en-<text hash>.model",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = _prepare(compose, small_multi30k, cache)
    assert "downloaded" not in caplog.text and "trained" not in caplog.text
    assert "reusing cached joint sentencepiece model" in caplog.text
    assert _files(home) == files  # nothing rewritten
    assert second.tokenizer.to_bytes() == first.tokenizer.to_bytes()
    # another pair of the same data set shares its folder: only French is fetched
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _prepare(compose, small_multi30k, cache, "data.tgt_lang=fr")
    assert caplog.text.count("downloaded file://") == 3
    assert len(list((home / "tokenizers").glob("unigram-500-de+fr-*.model"))) == 1
    # the other direction trains on the same text: nothing new to fetch or train
    caplog.clear()
    with caplog.at_level(logging.INFO):
        backwards = _prepare(compose, small_multi30k, cache, "data.src_lang=en", "data.tgt_lang=de")
    assert "downloaded" not in caplog.text and "trained" not in caplog.text
    assert backwards.tokenizer.to_bytes() == first.tokenizer.to_bytes()


def _without_hashes(name: str) -> str:
    name = re.sub(r"^downloads/[0-9a-f]{12}-", "downloads/<url hash>-", name)
    return re.sub(r"-[0-9a-f]{16}\.model$", "-<text hash>.model", name)


def test_prepared_data_stays_out_of_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0

    assert ignored("data/multi30k/tokenizers/unigram-8000-de+en-0123456789abcdef.model")
    assert ignored("data/multi30k/downloads/0123456789ab-train.de.gz")
    assert ignored("data/my_corpus/train.tsv")
    assert not ignored("data/README.md")


def test_make_clean_data_removes_what_was_downloaded_or_prepared_and_nothing_else(
    compose, small_multi30k: Path, tmp_path: Path
) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    cache = tmp_path / "data"
    _prepare(compose, small_multi30k, cache)
    (cache / "wmt14_de_en" / "hub" / "downloads").mkdir(parents=True)
    (cache / "my_corpus").mkdir()
    (cache / "my_corpus" / "train.tsv").write_text("a\tb\n")
    (cache / "README.md").write_text("kept\n")
    subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), "clean-data", f"DATA_HOME={cache}"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) == [
        "README.md",
        "my_corpus",
        "my_corpus/train.tsv",
    ]


def test_data_readme_describes_every_data_set_the_configs_know() -> None:
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#+ .*$", readme, flags=re.MULTILINE)
    configs = [
        path
        for group in ("data", "alignment")  # configs/alignment/: the gold alignment sets
        for path in sorted((REPO / "configs" / group).glob("*.yaml"))
    ]
    assert configs
    missing = [
        str(path.relative_to(REPO))
        for path in configs
        if not any(f"`{path.stem}`" in heading for heading in headings)
    ]
    assert not missing, f"data/README.md has no heading naming `<stem>` for: {missing}"
