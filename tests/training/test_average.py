"""Numbered checkpoints kept by the trainer, and `python -m seq2seq.average` over them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seq2seq import average
from seq2seq import checkpoint as ckpt
from seq2seq.decoding import SearchSettings
from seq2seq.evaluate import evaluate
from seq2seq.pipeline import load_trained
from seq2seq.train import train
from seq2seq.translate import translate_lines

from .conftest import compose_config


def numbered(run: Path) -> list[int]:
    return [update for update, _ in ckpt.numbered_checkpoints(run / "checkpoints")]


def validation_bleu(run: Path) -> dict[int, float]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {v["update"]: v["bleu"] for v in metrics["validations"]}


def run_average(*args: str) -> None:
    average.main([str(a) for a in args])


def test_trainer_keeps_the_latest_and_the_best_numbered_checkpoints(trained_run: Path):
    bleu = validation_bleu(trained_run)
    updates = sorted(bleu)  # every 50 updates and at each epoch's end
    assert len(updates) >= 4 and updates[-1] == 100  # so at least one was deleted
    best = max(updates, key=bleu.__getitem__)  # the first of equal scores, as training
    assert numbered(trained_run) == sorted({*updates[-2:], best})
    for update in numbered(trained_run):
        payload = ckpt.load_checkpoint(trained_run / "checkpoints" / f"update_{update}.pt")
        assert payload["progress"]["update"] == update
        assert "optimizer" not in payload  # weights only: a fraction of last.pt's size


def test_prune_keeps_last_and_best_by_score(tmp_path: Path):
    for update in (100, 200, 300, 400, 500):
        (tmp_path / ckpt.numbered_name(update)).write_bytes(b"")
    scores = {100: 3.0, 200: 9.0, 300: 1.0, 400: 2.0, 500: 5.0}
    deleted = ckpt.prune_numbered(tmp_path, scores, keep_last=2, keep_best=2, higher_is_better=True)
    assert sorted(p.name for p in deleted) == ["update_100.pt", "update_300.pt"]
    assert [u for u, _ in ckpt.numbered_checkpoints(tmp_path)] == [200, 400, 500]
    scores[500] = 2.0  # a tie with 400: the earlier is the best, as best.pt
    ckpt.prune_numbered(tmp_path, scores, keep_last=0, keep_best=1, higher_is_better=False)
    assert [u for u, _ in ckpt.numbered_checkpoints(tmp_path)] == [400]


def test_prune_keeps_the_latest_n_as_they_accumulate(tmp_path: Path):
    # the trainer prunes after each save: with fewer on disk than keep_last, all stay
    for update in range(100, 900, 100):
        (tmp_path / ckpt.numbered_name(update)).write_bytes(b"")
        ckpt.prune_numbered(tmp_path, {}, keep_last=5, keep_best=0, higher_is_better=True)
    assert [u for u, _ in ckpt.numbered_checkpoints(tmp_path)] == [400, 500, 600, 700, 800]


def test_average_of_the_last_checkpoints_is_the_mean_of_their_weights(
    trained_run: Path, tmp_path: Path
):
    out = tmp_path / "avg.pt"
    run_average(trained_run, "--last", "2", "--output", out)
    inputs = [ckpt.load_checkpoint(p) for p in average.select_numbered(trained_run, last=2)]
    assert [p["progress"]["update"] for p in inputs] == sorted(validation_bleu(trained_run))[-2:]
    averaged = ckpt.load_checkpoint(out)
    assert averaged["progress"]["update"] == 100
    assert averaged["config"] == inputs[-1]["config"]
    for key, tensor in averaged["model"].items():
        expected = torch.stack([p["model"][key] for p in inputs]).mean(dim=0)
        torch.testing.assert_close(tensor, expected, rtol=1e-6, atol=1e-7)
    last = inputs[-1]["model"]
    # nothing averaged would pass the mean check only if all inputs were equal
    assert any(not torch.equal(t, last[k]) for k, t in averaged["model"].items())


def test_best_picks_the_highest_validation_scores_earliest_first_on_ties(
    trained_run: Path, tmp_path: Path
):
    payload = ckpt.load_checkpoint(ckpt.numbered_checkpoints(trained_run / "checkpoints")[-1][1])
    for update, bleu in ((100, 7.0), (200, 9.0), (300, 3.0), (400, 7.0), (500, 1.0)):
        payload["progress"]["update"] = update
        payload["progress"]["validations"] = [{"update": update, "bleu": bleu}]
        ckpt.save_checkpoint(payload, tmp_path / "checkpoints" / ckpt.numbered_name(update))
    chosen = average.select_numbered(tmp_path, best=2)
    assert [p.name for p in chosen] == ["update_100.pt", "update_200.pt"]
    assert average.select_numbered(tmp_path, best=3)[-1].name == "update_400.pt"


def test_evaluate_and_translate_load_the_average(trained_run: Path, tmp_path: Path):
    run_average(trained_run, "--last", "2")
    out = trained_run / "checkpoints" / "average_last2.pt"
    metrics = evaluate(
        compose_config(
            "evaluate",
            f"checkpoint={out}",
            "search=greedy",
            f"cache_dir={trained_run.parent / 'cache'}",
            "progress=false",
        )
    )
    assert metrics["checkpoint"] == str(out) and metrics["sentences"] == 30
    eval_dir = trained_run / "eval" / "test.beam1.average_last2"  # not the best's results
    hyps = (eval_dir / "test.hyp").read_text().splitlines()
    sources = (eval_dir / "test.src").read_text().splitlines()
    model, tokenizer, _ = load_trained(out, torch.device("cpu"))
    search = SearchSettings(beam_size=1, alpha=1.0, max_len_a=1.5, max_len_b=10)
    cpu = torch.device("cpu")
    assert list(translate_lines(sources, model, tokenizer, search, cpu, 8, 400)) == hyps


def test_training_cannot_resume_from_weights_only(trained_run: Path, tiny_config, tmp_path):
    weights = ckpt.numbered_checkpoints(trained_run / "checkpoints")[-1][1]
    with pytest.raises(ckpt.CheckpointError, match="holds model weights only"):
        train(tiny_config(f"trainer.resume={weights}"), tmp_path / "run")


def one_error_line(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_average(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_user_errors_are_one_line(trained_run: Path, tmp_path: Path, capsys):
    empty_run = tmp_path / "empty"
    (empty_run / "checkpoints").mkdir(parents=True)
    assert "holds 0 numbered checkpoints" in one_error_line(capsys, empty_run, "--last", "2")
    assert "trainer.keep_last=9" in one_error_line(capsys, trained_run, "--last", "9")
    assert "--last N or --best N" in one_error_line(capsys, trained_run)
    assert "needs --output" in one_error_line(capsys, trained_run / "checkpoints" / "last.pt")
    missing = tmp_path / "gone.pt"
    assert f"checkpoint not found: {missing}" in one_error_line(
        capsys, trained_run / "checkpoints" / "last.pt", missing, "-o", tmp_path / "a.pt"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("shape", "differ in the shape of"),
        ("config", "different model configs"),
        ("keys", "different parameters"),
    ],
)
def test_checkpoints_of_different_models_are_refused(
    trained_run: Path, tmp_path: Path, capsys, change: str, message: str
):
    good = trained_run / "checkpoints" / "last.pt"
    payload = ckpt.load_checkpoint(good)
    key = next(iter(payload["model"]))
    if change == "shape":
        payload["model"][key] = torch.zeros(3, 1)
    elif change == "config":
        payload["config"]["model"]["dropout"] = 0.5
    else:
        payload["model"]["extra.weight"] = torch.zeros(1)
    other = tmp_path / "other.pt"
    ckpt.save_checkpoint(payload, other)
    err = one_error_line(capsys, good, other, "-o", tmp_path / "avg.pt")
    assert message in err and str(other) in err
    assert not (tmp_path / "avg.pt").exists()
