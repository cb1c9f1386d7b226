"""evaluate and translate on a checkpoint from a real run; bad checkpoints and bad configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException

from seq2seq import checkpoint as ckpt
from seq2seq.config import validate_config
from seq2seq.decoding import SearchSettings
from seq2seq.evaluate import evaluate
from seq2seq.pipeline import load_trained
from seq2seq.train import train
from seq2seq.translate import translate_lines

from .conftest import REPO, compose_config


def test_evaluate_and_translate_decode_the_same_text(trained_run: Path, tmp_path: Path):
    cfg = compose_config(
        "evaluate",
        f"checkpoint={trained_run}",
        "data.split=test",
        "search.beam_size=3",
        f"output_dir={tmp_path / 'eval'}",
        f"cache_dir={trained_run.parent / 'cache'}",
        "progress=false",
    )
    metrics = evaluate(cfg)
    hyps = (tmp_path / "eval" / "test.hyp").read_text().splitlines()
    sources = (tmp_path / "eval" / "test.src").read_text().splitlines()
    assert metrics["sentences"] == len(hyps) == len(sources) == 30
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["bleu"] == metrics["bleu"]

    model, tokenizer, _ = load_trained(
        trained_run, ckpt_device := __import__("torch").device("cpu")
    )
    search = SearchSettings(beam_size=3, alpha=1.0, max_len_a=1.5, max_len_b=10)
    translated = list(translate_lines(sources, model, tokenizer, search, ckpt_device, 7, 400))
    assert any(hyps) and translated == hyps


def test_translate_cli_reads_stdin_and_writes_only_translations(trained_run: Path, tmp_path: Path):
    """The command line's stdout, line for line, is what seq2seq.evaluate decoded for the same
    sources with the same search (not merely as many lines)."""
    cfg = compose_config(
        "evaluate",
        f"checkpoint={trained_run}",
        "data.split=test",
        "search.beam_size=2",
        f"output_dir={tmp_path}",
        f"cache_dir={trained_run.parent / 'cache'}",
        "progress=false",
    )
    evaluate(cfg)
    sources = (tmp_path / "test.src").read_text().splitlines()
    expected = (tmp_path / "test.hyp").read_text().splitlines()
    assert any(expected), "the trained model must translate into something for this to test"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seq2seq.translate",
            f"checkpoint={trained_run}",
            "search.beam_size=2",
        ],
        input="\n".join(sources) + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert result.stdout.splitlines() == expected
    assert "INFO" not in result.stdout


def test_missing_checkpoint_names_the_path(tmp_path: Path):
    with pytest.raises(ckpt.CheckpointError, match=f"checkpoint not found: {tmp_path}/nope.pt"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint in run directory"):
        ckpt.load_checkpoint(tmp_path)


def test_corrupt_checkpoint_names_the_file(trained_run: Path, tmp_path: Path):
    truncated = tmp_path / "truncated.pt"
    good = (trained_run / "checkpoints" / "last.pt").read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ckpt.CheckpointError, match=f"{truncated} is corrupt or unreadable"):
        ckpt.load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ckpt.CheckpointError, match="is not a seq2seq checkpoint"):
        ckpt.load_checkpoint(foreign)


def test_resume_from_missing_checkpoint_fails_before_training(tiny_config, tmp_path: Path):
    with pytest.raises(ckpt.CheckpointError, match="checkpoint not found"):
        train(tiny_config(f"trainer.resume={tmp_path / 'gone.pt'}"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=0", "trainer.max_epochs must be a positive integer, got 0"),
        ("trainer.precision=fp8", "trainer.precision must be one of"),
        ("trainer.label_smoothing=1.5", "trainer.label_smoothing must be a number in"),
        ("optim.lr=-1", "optim.lr must be a positive number"),
        ("search.beam_size=0", "search.beam_size must be a positive integer"),
        ("data.max_tokens=-5", "data.max_tokens must be a positive integer, got -5"),
        ("device=tpu", "device must be auto, cpu or cuda"),
    ],
)
def test_invalid_values_fail_up_front_naming_the_key(override: str, message: str):
    # the data root does not exist: the config check must fail before any file is read
    cfg = compose_config("train", "data.root=/nonexistent", override)
    with pytest.raises(ValueError, match=message):
        validate_config(cfg)


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException, match="trainer.max_epoch"):
        compose_config("train", "trainer.max_epoch=3")
