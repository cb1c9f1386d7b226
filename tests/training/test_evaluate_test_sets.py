"""`python -m seq2seq.evaluate` on test sets training never named: files and other splits."""

from __future__ import annotations

import gzip
import re
import runpy
import sys
from pathlib import Path

import pytest
from support import MULTI30K, missing_data

from seq2seq.data.test_sets import load_split, read_file_pair
from seq2seq.evaluate import evaluate

from .conftest import compose_config


def evaluate_on(run: Path, out: Path, *overrides: str) -> dict:
    cfg = compose_config(
        "evaluate",
        f"checkpoint={run}",
        "search=greedy",
        f"output_dir={out}",
        f"cache_dir={run.parent / 'cache'}",
        "progress=false",
        *overrides,
    )
    return evaluate(cfg)


@pytest.fixture(scope="module")
def test_split(trained_run: Path, tmp_path_factory) -> tuple[dict, Path]:
    """The run's test split scored by name, and the directory of its written files."""
    out = tmp_path_factory.mktemp("split")
    return evaluate_on(trained_run, out, "data.split=test"), out


def write(path: Path, lines: list[str]) -> Path:
    text = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def test_a_pair_of_files_scores_as_the_same_split(test_split, trained_run: Path, tmp_path: Path):
    by_name, split_dir = test_split
    sources = (split_dir / "test.src").read_text().splitlines()
    references = (split_dir / "test.ref").read_text().splitlines()
    src = write(tmp_path / "held_out.src.gz", sources)  # gzip on one side, plain on the other
    ref = write(tmp_path / "held_out.tgt", references)
    by_file = evaluate_on(trained_run, tmp_path / "out", f"src={src}", f"ref={ref}")
    assert by_file["split"] == "held_out" and by_file["src"] == str(src)
    assert by_file["sentences"] == by_name["sentences"] == 30
    for key in ("bleu", "chrf", "loss", "exact_match"):
        assert by_file[key] == pytest.approx(by_name[key]), key
    hyps = (tmp_path / "out" / "held_out.hyp").read_text()
    assert hyps == (split_dir / "test.hyp").read_text()


def test_a_subset_of_lines_is_scored_alone(test_split, trained_run: Path, tmp_path: Path):
    _, split_dir = test_split
    sources = (split_dir / "test.src").read_text().splitlines()[:7]
    references = (split_dir / "test.ref").read_text().splitlines()[:7]
    src, ref = write(tmp_path / "few.txt", sources), write(tmp_path / "few_ref.txt", references)
    metrics = evaluate_on(trained_run, tmp_path / "out", f"src={src}", f"ref={ref}")
    assert metrics["sentences"] == 7 and metrics["split"] == "few"


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        (("a.src", "a.tgt:3"), ValueError, r"a\.src has 4 lines but .*a\.tgt has 3"),
        (("gone.src", "a.tgt"), FileNotFoundError, r"src: no such file: .*gone\.src"),
        (("a.src", "gone.tgt"), FileNotFoundError, r"ref: no such file: .*gone\.tgt"),
        (("b.tgt", "b.src"), ValueError, r"src=.*b\.tgt: .* says language 'tgt'.*swapped"),
        (("a.src", "b.src"), ValueError, r"ref=.*b\.src: .* so ref must be 'tgt'"),
        (("empty.src", "empty.tgt:0"), ValueError, r"src: .*empty\.src is empty"),
    ],
)
def test_bad_files_fail_naming_the_file(trained_run, tmp_path, files, error, message):
    lines = ["a b c", "d e", "f", "g h i j"]
    for name in ("a.src", "a.tgt:3", "b.tgt", "b.src", "empty.src:0", "empty.tgt:0"):
        name, _, count = name.partition(":")
        write(tmp_path / name, lines[: int(count or 4)])
    src, ref = (str(tmp_path / f.partition(":")[0]) for f in files)
    with pytest.raises(error, match=message):
        evaluate_on(trained_run, tmp_path / "out", f"src={src}", f"ref={ref}")
    assert not (tmp_path / "out").exists()


def test_src_without_ref_is_refused(trained_run: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="src was given without ref"):
        evaluate_on(trained_run, tmp_path / "out", f"src={tmp_path / 'a.src'}")


def test_a_split_the_data_set_lacks_is_refused(trained_run: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="toy_copy data set has the splits train, valid"):
        evaluate_on(trained_run, tmp_path / "out", "data.split=test_2017")


def test_file_data_sets_load_another_split_by_its_file_prefix(tmp_path: Path):
    for prefix, count in (("train", 5), ("val", 2), ("test_2016_flickr", 2), ("test_2017", 3)):
        for lang in ("de", "en"):
            write(tmp_path / f"{prefix}.{lang}.gz", [f"{lang} {i}" for i in range(count)])
    data_cfg = compose_config("train", f"data.root={tmp_path}").data
    pairs = load_split(data_cfg, "test_2017", tmp_path / "cache")
    assert pairs["source"] == ["de 0", "de 1", "de 2"]
    assert pairs["target"] == ["en 0", "en 1", "en 2"]
    assert load_split(data_cfg, "test", tmp_path / "cache")["source"] == ["de 0", "de 1"]
    with pytest.raises(FileNotFoundError, match=r"split prefix 'test_2099'.*test_2099\.de\.gz"):
        load_split(data_cfg, "test_2099", tmp_path / "cache")


def test_multi30k_files_read_in_the_model_order_and_refuse_the_other():
    test = MULTI30K / "test_2016_flickr"
    if not Path(f"{test}.de.gz").is_file():
        missing_data(f"Multi30k is not at {MULTI30K}")
    pair = {"src_lang": "de", "tgt_lang": "en", "languages": ["de", "en", "fr", "cs"]}
    pairs = read_file_pair(f"{test}.de.gz", f"{test}.en.gz", **pair)
    assert len(pairs) == 1000 and pairs[0]["source"].startswith("Ein Mann")
    with pytest.raises(ValueError, match=r"test_2016_flickr\.en\.gz: .* 'en'.*swapped"):
        read_file_pair(f"{test}.en.gz", f"{test}.de.gz", **pair)
    with pytest.raises(ValueError, match=r"src=.*\.fr\.gz: .* 'fr', .* src must be 'de'$"):
        read_file_pair(f"{test}.fr.gz", f"{test}.en.gz", **pair)


@pytest.mark.parametrize(
    ("ref_lines", "message"),
    [(None, r"ref: no such file: .*gone\.tgt"), (3, r"a\.src has 4 lines but .*gone\.tgt has 3")],
)
def test_the_command_line_names_the_bad_file_in_one_line_and_exits_2(
    trained_run, tmp_path, monkeypatch, capsys, ref_lines, message
):
    src = write(tmp_path / "a.src", ["a b c", "d e", "f", "g h i j"])
    ref = tmp_path / "gone.tgt"
    if ref_lines is not None:
        write(ref, ["x"] * ref_lines)
    argv = ["seq2seq.evaluate", f"checkpoint={trained_run}", f"src={src}", f"ref={ref}"]
    monkeypatch.setattr(sys, "argv", [*argv, f"output_dir={tmp_path / 'out'}", "progress=false"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("seq2seq.evaluate", run_name="__main__", alter_sys=True)
    stderr = capsys.readouterr().err.strip()  # the log of loading the model, then the error
    assert exit_info.value.code == 2 and "Traceback" not in stderr, stderr
    assert re.fullmatch(rf"error: .*{message}.*", stderr.splitlines()[-1]), stderr
    assert not (tmp_path / "out").exists()
