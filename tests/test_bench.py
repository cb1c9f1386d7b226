"""`python -m seq2seq.bench` on a tiny run, and the arithmetic of its throughput window."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import support
import torch

from seq2seq import bench
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


class FakeLogger:
    def train_update(self, *args) -> None:
        pass


def test_throughput_counts_updates_after_skip_between_their_end_times():
    clock = bench.UpdateClock(FakeLogger(), torch.device("cpu"))
    clock.stamps = [10.0, 11.0, 13.0, 14.0, 18.0]  # end of updates 1..5
    clock.tgt_tokens = [999, 999, 100, 200, 300]
    # validations: after update 1 (before the window), after update 3, after the last update
    validations = [(10.5, 10.9), (13.2, 14.2), (18.5, 25.0)]
    measured = clock.throughput(skip=2, excluded=validations)
    # updates 3..5 ran from the end of update 2 (11.0) to the end of update 5 (18.0), less the
    # 1 s of the validation inside that window
    assert measured["updates_measured"] == 3
    assert measured["seconds"] == pytest.approx(6.0)
    assert measured["tgt_tokens_per_s"] == pytest.approx(600 / 6)
    assert measured["updates_per_s"] == pytest.approx(3 / 6)
    assert measured["tgt_tokens_per_update"] == 200
    with pytest.raises(ValueError, match="skip"):
        clock.throughput(skip=5, excluded=[])


def test_bench_writes_results_for_one_tiny_model(tmp_path):
    out = tmp_path / "bench"
    argv = ["--models", "transformer", "--updates", "6", "--skip", "2", "--out", str(out)]
    results = bench.main([*argv, "--in-process", *TINY, f"cache_dir={tmp_path / 'cache'}"])

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
    assert run["overrides"][: len(bench.REFERENCE)] == list(bench.REFERENCE)
    table = (out / "results.md").read_text()
    assert "| transformer |" in table and written["machine"]["cpu"] in table


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
    cfg = bench.compose_model_config(model, [], updates=7)
    assert support.training_recipe(cfg) == recipe and cfg.data.max_tokens == 2250


def test_user_overrides_come_after_the_reference_and_model_settings():
    cfg = bench.compose_model_config("rnn_luong_general", ["optim.lr=1e-3"], updates=7)
    assert cfg.optim.lr == 1e-3 and cfg.data.max_tokens == 2250
    assert cfg.model.attention._target_.endswith("LuongGeneralAttention")
    assert cfg.trainer.max_updates == 7 and cfg.trainer.label_smoothing == 0.0


@pytest.mark.parametrize(
    "argv, message",
    [(["--models", "lstm"], "unknown models"), (["--skip", "0"], "--skip")],
)
def test_bad_arguments_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


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
    machine = {"date": "d", "cpu": "c", "cpu_count": 2, "torch": "t", "load_average_start": [0.1]}
    results = {
        "machine": machine,
        "settings": {"updates": 300, "skip": 20, "beam_size": 5, "command": "x"},
        "models": {"a": run, "b": run},
    }
    table = bench.markdown(results)
    assert table.count("| a |") == 1 and table.count("| b |") == 1
    assert "2,500" in table and "130.0" in table


def test_comparison_with_joeynmt_gives_ratios_against_the_targets(tmp_path):
    joey = tmp_path / "joeynmt"
    (joey / "decode").mkdir(parents=True)
    (joey / "tp_rnn_bahdanau.throughput.json").write_text('{"trg_tok_per_s": 1000.0}\n')
    (joey / "decode" / "tp300_rnn_bahdanau.beam1.json").write_text('{"sent_per_s": 100.0}')
    (joey / "decode" / "tp300_rnn_bahdanau.beam5.json").write_text(
        '{"sent_per_s": 80.0, "bleu": 2.0, "hyp_words": 13000}'
    )
    run = {
        "train": {"tgt_tokens_per_s": 2000.0},
        "decode": {
            "greedy": {"sentences_per_s": 300.0},
            "beam5": {"sentences_per_s": 120.0, "bleu": 4.5, "hyp_words": 12500},
        },
    }
    results = {
        "machine": {
            "date": "d",
            "cpu": "c",
            "cpu_count": 2,
            "torch": "t",
            "load_average_start": [1],
        },
        "settings": {"updates": 300, "skip": 20, "beam_size": 5, "command": "x"},
        "models": {"rnn_bahdanau": run, "transformer": run},
    }
    table = bench.versus_joeynmt(results, joey)
    bahdanau = next(line for line in table.splitlines() if line.startswith("| rnn_bahdanau"))
    assert "2.00x (>= 1.5: met)" in bahdanau and "1.50x (>= 2.0: missed)" in bahdanau
    assert "300.0 / 100.0" in bahdanau and "4.5 / 2.0" in bahdanau
    assert "12,500 / 13,000.0" in bahdanau  # how much each generated, next to its speed
    transformer = next(line for line in table.splitlines() if line.startswith("| transformer"))
    assert "2,000.0 / -" in transformer  # JoeyNMT's run is missing: no ratio, no verdict
