"""`python -m seq2seq.bench` on a tiny run, its reference models (configs/bench/), the arithmetic
of its throughput window and its reports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import support
import torch

from seq2seq import runtime
from seq2seq.bench import measure, report
from seq2seq.bench.__main__ import main, parse_args
from seq2seq.bench.models import (
    MODELS_DIR,
    compose_train_config,
    load_model,
    reference_models,
)
from seq2seq.config import validate_config
from seq2seq.pipeline import build_model

# toy copy data and a one-layer Transformer: the whole bench of one model in a few seconds
TINY = (
    "data=toy_copy",
    "data.source.train_size=300",
    "data.source.validation_size=20",
    "data.source.test_size=12",
    "data.max_tokens=400",
    "model.d_model=32",
    "model.ff_size=64",
    "model.num_heads=2",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=1",
    "trainer.num_threads=1",
)
REFERENCE_NAMES = ["rnn_bahdanau", "rnn_luong_general", "rnn_luong_local_p", "transformer"]
# issue 20: training tokens/s and beam-5 sentences/s over JoeyNMT's
GOALS = {"rnn": {"train": 2.5, "beam": 3.0}, "transformer": {"train": 3.0, "beam": 10.0}}


class FakeLogger:
    def train_update(self, *args) -> None:
        pass

    def validation(self, *args) -> None:
        pass


def test_throughput_counts_updates_after_skip_between_their_end_times():
    clock = measure.UpdateClock(FakeLogger(), torch.device("cpu"))
    clock.stamps = [10.0, 11.0, 13.0, 14.0, 18.0]  # end of updates 1..5
    clock.tgt_tokens = [999, 999, 100, 200, 300]
    # validations: after update 1 (before the window), after update 3, after the last update
    clock.excluded = [(10.0, 10.9), (13.0, 14.0), (18.0, 25.0)]
    measured = clock.throughput(skip=2)
    # updates 3..5 ran from the end of update 2 (11.0) to the end of update 5 (18.0), less the
    # 1 s of the validation inside that window
    assert measured["updates_measured"] == 3
    assert measured["seconds"] == pytest.approx(6.0)
    assert measured["tgt_tokens_per_s"] == pytest.approx(600 / 6)
    assert measured["updates_per_s"] == pytest.approx(3 / 6)
    assert measured["tgt_tokens_per_update"] == 200
    with pytest.raises(ValueError, match="skip"):
        clock.throughput(skip=5)


def test_a_validation_is_excluded_from_the_end_of_the_update_before_it():
    clock = measure.UpdateClock(FakeLogger(), torch.device("cpu"))
    clock.validation(0, None)  # before any update (a resumed run): nothing to exclude
    clock.train_update(1, SimpleNamespace(tgt_tokens=10), 1e-3)
    clock.validation(1, None)
    assert clock.excluded == [(clock.stamps[0], pytest.approx(clock.excluded[0][1]))]
    assert clock.excluded[0][1] >= clock.stamps[0]


def test_bench_writes_results_for_one_tiny_model(tmp_path):
    out = tmp_path / "bench"
    argv = ["--models", "transformer", "--updates", "6", "--skip", "2", "--out", str(out)]
    results = main([*argv, "--in-process", *TINY, f"cache_dir={tmp_path / 'cache'}"])

    written = json.loads((out / "results.json").read_text())
    assert written["models"].keys() == results["models"].keys() == {"transformer"}
    run = written["models"]["transformer"]
    # the recorded overrides rebuild a model of the recorded size (toy_copy: 24 joint pieces)
    vocab = SimpleNamespace(src_vocab_size=24, tgt_vocab_size=24, pad_id=0)
    rebuilt = build_model(support.compose_config("train", *run["overrides"]).model, vocab)
    assert run["parameters"] == sum(p.numel() for p in rebuilt.parameters())
    assert run["train"]["updates_measured"] == 4
    assert run["train"]["tgt_tokens_per_s"] > 0 and run["train"]["updates_per_s"] > 0
    assert set(run["decode"]) == {"greedy", "beam5"}
    for search in run["decode"].values():
        assert search["sentences"] == 12 and search["sentences_per_s"] > 0
        assert 0 <= search["bleu"] <= 100 and isinstance(search["hyp_words"], int)
    assert run["parameters"] > 0 and run["peak_memory_mib"] > 0
    # precision=auto: training in bf16 where the CPU has bf16 instructions, search in fp32
    assert run["precision"] == ("bf16" if runtime.cpu_has_bf16() else "fp32")
    assert run["decoding_precision"] == "fp32"
    reference = reference_models()["transformer"]
    assert run["overrides"][: len(reference.overrides)] == list(reference.overrides)
    assert run["joeynmt"] == {"peer": "transformer", "goals": GOALS["transformer"]}
    table = (out / "results.md").read_text()
    assert "| transformer |" in table and written["machine"]["cpu"] in table
    # the report is made from results.json alone
    assert report.markdown(written) == table


def test_the_reference_models_are_the_files_of_configs_bench_with_issue_20s_goals():
    models = reference_models()
    assert list(models) == REFERENCE_NAMES
    for name, model in models.items():
        assert model.goals == GOALS["transformer" if name == "transformer" else "rnn"]
    peers = {name: model.joeynmt for name, model in models.items()}
    # JoeyNMT has no local attention: local-p meets its global Luong model, the same decoder
    assert peers == {
        "rnn_bahdanau": "rnn_bahdanau",
        "rnn_luong_general": "rnn_luong",
        "rnn_luong_local_p": "rnn_luong",
        "transformer": "transformer",
    }


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_each_reference_model_is_a_valid_train_config(name):
    cfg = compose_train_config(reference_models()[name], [], updates=300)
    validate_config(cfg)  # as bench_model checks it before training
    assert cfg.data.name == "multi30k" and cfg.trainer.max_updates == 300


def test_a_new_file_is_a_new_reference_model(tmp_path, monkeypatch):
    for name in ("rnn_bahdanau", "transformer"):
        (tmp_path / f"{name}.yaml").write_text((MODELS_DIR / f"{name}.yaml").read_text())
    (tmp_path / "rnn_luong_dot.yaml").write_text(
        "joeynmt: rnn_luong\ngoals: {train: 2.5, beam: 3}\n"
        "overrides: [model=rnn, model/attention=luong_dot]\n"
    )
    monkeypatch.setattr(
        "seq2seq.bench.__main__.reference_models", lambda: reference_models(tmp_path)
    )
    args = parse_args(["--models", "rnn_luong_dot,transformer"])
    assert [model.name for model in args.models] == ["rnn_luong_dot", "transformer"]
    cfg = compose_train_config(args.models[0], [], updates=7)
    assert cfg.model.attention._target_.endswith("LuongDotAttention")


@pytest.mark.parametrize(
    "text, message",
    [
        ("joeynmt: x\ngoals: {train: 1, beam: 1}\n", "missing overrides"),
        ("joeynmt: x\ngoals: {train: 1}\noverrides: []\n", "goals must give train and beam"),
        ("joeynmt: x\ngoals: {train: 1, beam: 1}\noverrides: model=rnn\n", "must be a list"),
    ],
)
def test_a_malformed_model_file_is_named(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_model(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "model, recipe",
    [
        ("rnn_bahdanau", ("Adam", 3e-4, [0.9, 0.999], "ConstantLR")),
        ("rnn_luong_local_p", ("Adam", 3e-4, [0.9, 0.999], "ConstantLR")),
        ("transformer", ("Adam", 5e-4, [0.9, 0.98], "inverse_sqrt_warmup/400")),
    ],
)
def test_models_train_with_the_optimiser_settings_of_joeynmts_configs(model, recipe):
    """../shared/bench/joeynmt/configs: rnn_*.yaml Adam 3e-4 at a constant rate,
    transformer.yaml Adam (0.9, 0.98) warmed up over 400 updates to 5e-4, then 1/sqrt decay."""
    cfg = compose_train_config(reference_models()[model], [], updates=7)
    assert support.training_recipe(cfg) == recipe and cfg.data.max_tokens == 2250


def test_user_overrides_come_after_the_reference_and_model_settings():
    model = reference_models()["rnn_luong_general"]
    cfg = compose_train_config(model, ["optim.lr=1e-3"], updates=7)
    assert cfg.optim.lr == 1e-3 and cfg.data.max_tokens == 2250
    assert cfg.model.attention._target_.endswith("LuongGeneralAttention")
    assert cfg.trainer.max_updates == 7 and cfg.trainer.label_smoothing == 0.0


@pytest.mark.parametrize(
    "argv, message",
    [(["--models", "lstm"], "unknown models"), (["--skip", "0"], "--skip")],
)
def test_bad_arguments_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


MACHINE = {"date": "d", "cpu": "c", "cpu_count": 2, "torch": "t", "load_average_start": [0.1]}
SETTINGS = {"updates": 300, "skip": 20, "beam_size": 5, "command": "x"}


def test_markdown_shows_one_row_per_model():
    run = {
        "device": "cpu",
        "precision": "fp32",
        "threads": 2,
        "train": {"tgt_tokens_per_s": 2500.0, "updates_per_s": 2.7},
        "decode": {
            "greedy": {"sentences_per_s": 300.0, "bleu": 10.0},
            "beam5": {"sentences_per_s": 130.0, "bleu": 11.0},
        },
        "parameters": 8_000_000,
        "peak_memory_mib": 900.0,
    }
    results = {"machine": MACHINE, "settings": SETTINGS, "models": {"a": run, "b": run}}
    table = report.markdown(results)
    assert table.count("| a |") == 1 and table.count("| b |") == 1
    assert "2,500" in table and "130.0" in table


def test_comparison_with_joeynmt_gives_ratios_against_each_models_goals(tmp_path):
    joey = tmp_path / "joeynmt"
    (joey / "decode").mkdir(parents=True)
    (joey / "tp_rnn_bahdanau.throughput.json").write_text('{"trg_tok_per_s": 1000.0}\n')
    (joey / "decode" / "tp300_rnn_bahdanau.beam1.json").write_text('{"sent_per_s": 100.0}')
    (joey / "decode" / "tp300_rnn_bahdanau.beam5.json").write_text(
        '{"sent_per_s": 40.0, "bleu": 2.0, "hyp_words": 13000}'
    )

    def measured(peer: str, goals: dict[str, float]) -> dict:
        return {
            "joeynmt": {"peer": peer, "goals": goals},
            "train": {"tgt_tokens_per_s": 2600.0},
            "decode": {
                "greedy": {"sentences_per_s": 300.0},
                "beam5": {"sentences_per_s": 120.0, "bleu": 4.5, "hyp_words": 12500},
            },
        }

    models = {
        "rnn_bahdanau": measured("rnn_bahdanau", GOALS["rnn"]),
        "transformer": measured("transformer", GOALS["transformer"]),
    }
    table = report.versus_joeynmt(
        {"machine": MACHINE, "settings": SETTINGS, "models": models}, joey
    )
    bahdanau = next(line for line in table.splitlines() if line.startswith("| rnn_bahdanau"))
    assert "2.60x (>= 2.5: met)" in bahdanau and "3.00x (>= 3.0: met)" in bahdanau
    assert "300.0 / 100.0" in bahdanau and "4.5 / 2.0" in bahdanau
    assert "12,500 / 13,000.0" in bahdanau  # how much each generated, next to its speed
    transformer = next(line for line in table.splitlines() if line.startswith("| transformer"))
    assert "2,600.0 / -" in transformer  # JoeyNMT's run is missing: no ratio, no verdict
    assert "(>= 3.0)" in transformer and "(>= 10.0)" in transformer


PARENT = """
import multiprocessing, pathlib, sys, time
from seq2seq.runtime import die_with_parent

def child(ready):
    die_with_parent()
    pathlib.Path(ready).touch()
    time.sleep(60)

if __name__ == "__main__":
    worker = multiprocessing.get_context("spawn").Process(target=child, args=(sys.argv[1],))
    worker.start()
    print(worker.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_bench_worker_ends_when_the_bench_is_killed(tmp_path):
    """A bench killed from the shell takes its worker process with it (issue 20's sittings
    found a killed bench's worker still training, and slowing everything after it)."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    ready = tmp_path / "ready"
    command = [sys.executable, str(script), str(ready)]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ready.exists():  # the child ran die_with_parent
        time.sleep(0.1)
    assert _running(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.1)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reaped or exited child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("launched", "tied"), [(True, True), (False, False)])
def test_training_ends_with_the_launcher_that_ran_it_but_not_with_a_shell(
    monkeypatch, launched, tied
):
    """A sweep point in a joblib worker (a multiprocessing child) is tied to its launcher; a run
    started from a shell is not, so `nohup python -m seq2seq.train` outlives the shell."""
    calls = []
    parent = object() if launched else None
    monkeypatch.setattr(runtime.multiprocessing, "parent_process", lambda: parent)
    monkeypatch.setattr(runtime, "die_with_parent", lambda: calls.append("tied"))
    runtime.end_with_launcher()
    assert calls == (["tied"] if tied else [])
