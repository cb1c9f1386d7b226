"""What a tiny real run leaves for TensorBoard, read back from its event files, and the fixed
examples' attention."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib.image
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from seq2seq import decoding
from seq2seq.data import prepare_data
from seq2seq.decoding import SearchSettings
from seq2seq.inference import Translator
from seq2seq.pipeline import build_model
from seq2seq.train import train
from seq2seq.training.examples import AttentionExamples
from seq2seq.training.run_logger import (
    ATTENTION_FILE,
    FINAL_GROUP,
    TENSORBOARD_DIR,
    hyper_parameters,
)

from .conftest import TINY, compose_config

# keep every event of every kind: the defaults subsample images and tensors
ALL_EVENTS = {"scalars": 0, "images": 0, "tensors": 0}
SEARCH = SearchSettings(beam_size=1, alpha=1.0, max_len_a=1.5, max_len_b=5)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Six updates, validated at 3 and 6, two examples with per-head heatmaps (2 heads)."""
    root = tmp_path_factory.mktemp("tensorboard")
    overrides = ("trainer.max_updates=6", "trainer.validate_every=3", "logger.examples=2")
    cfg = compose_config(
        "train", *TINY, f"cache_dir={root / 'cache'}", *overrides, "logger.attention_heads=true"
    )
    train(cfg, root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def events(run: Path) -> EventAccumulator:
    # named by variant and seed: TensorBoard's name for the run (TINY: the Transformer, seed 42)
    (log_dir,) = (run / TENSORBOARD_DIR).iterdir()
    assert log_dir.name == "Transformer_seed42"
    files = list(log_dir.iterdir())
    assert len(files) == 1, f"one event file per run, so HParams pair with its scalars: {files}"
    return EventAccumulator(str(log_dir), size_guidance=ALL_EVENTS).Reload()


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def scalars(events: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in events.Scalars(tag)}


def test_training_scalars_every_update(events):
    loss = scalars(events, "train/loss")
    assert sorted(loss) == [1, 2, 3, 4, 5, 6]
    for tag in ("train/lr", "train/grad_norm", "train/tgt_tokens_per_s"):
        assert sorted(scalars(events, tag)) == sorted(loss)
        assert all(v > 0 for v in scalars(events, tag).values())
    ppl = scalars(events, "train/ppl")
    assert all(ppl[s] == pytest.approx(math.exp(loss[s]), rel=1e-5) for s in loss)


def test_validation_scalars_match_metrics_json(events, run):
    validations = metrics_of(run)["validations"]
    assert [v["update"] for v in validations] == [3, 6]
    # attn_*: the attention diagnostics (seq2seq/diagnostics.py) of every validation
    for name in ("loss", "ppl", "bleu", "chrf", "attn_entropy", "attn_eos_share", "attn_uncovered"):
        logged = scalars(events, f"validation/{name}")
        assert logged == {v["update"]: pytest.approx(v[name], rel=1e-5) for v in validations}


def test_examples_text_and_attention_images_at_every_validation(events, run):
    examples = json.loads((run / ATTENTION_FILE).read_text())["examples"]
    for i, example in enumerate(examples):
        texts = events.Tensors(f"examples/{i}/text_summary")
        assert [t.step for t in texts] == [3, 6]
        text = texts[-1].tensor_proto.string_val[0].decode()
        assert example["reference"] in text and "**translation:**" in text
        images = events.Images(f"attention/{i}")
        assert [image.step for image in images] == [3, 6]
        pixels = matplotlib.image.imread(io.BytesIO(images[-1].encoded_image_string))
        assert pixels.shape[0] == images[-1].height > 50 and pixels.shape[1] > 50
        for head in (0, 1):  # model.num_heads=2 in TINY
            assert len(events.Images(f"attention_heads/{i}/{head}")) == 2
    assert "attention/2" not in events.Tags()["images"]  # logger.examples=2


def test_hparams_hold_variant_seed_data_and_the_final_metrics(events, run):
    metrics = metrics_of(run)
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    hparams = {
        name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()
    }
    # no command-line overrides outside Hydra: the three columns every run has
    assert hparams == {"Variant": "Transformer", "Seed": 42, "Data": "toy_copy src-tgt"}
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    # capitalised: TensorBoard lists columns by name, so these come before the config keys
    assert [info.name for info in experiment.hparam_infos] == ["Variant", "Seed", "Data"]
    metric_tags = [info.name.tag for info in experiment.metric_infos]
    assert metric_tags and all(tag.startswith(f"{FINAL_GROUP}/") for tag in metric_tags)
    assert hparams_metadata.SESSION_END_INFO_TAG in content
    final = {
        tag.split("/")[1]: scalars(events, tag)[6]
        for tag in events.Tags()["scalars"]
        if tag.startswith(f"{FINAL_GROUP}/")
    }
    assert final["test_bleu_greedy"] == pytest.approx(metrics["test"]["greedy"]["bleu"])
    assert final["parameters"] == metrics["parameters"]
    best = max(v["bleu"] for v in metrics["validations"])
    assert final["best_validation_bleu"] == pytest.approx(best)
    # the single values sort after the curves, which lead the Scalars dashboard
    groups = sorted({tag.split("/")[0] for tag in events.Tags()["scalars"]})
    assert groups == ["train", "validation", FINAL_GROUP]
    results = events.Tensors("results/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"| test_bleu_greedy | {final['test_bleu_greedy']:,.2f} |" in results


def test_hparams_columns_are_the_command_line_overrides_with_their_resolved_values(run):
    overrides = [
        "experiment=compare_attention_smoke",  # a config group: its option
        "model.d_model=32",
        "optim.lr=5e-4",
        "+data.source.languages=[src,tgt]",  # a list: as JSON
        "trainer.max_minutes=null",
        "hydra.sweep.dir=/tmp/x",  # Hydra's own: no column
        "seed=42",  # a column already
    ]
    columns = hyper_parameters(metrics_of(run), overrides)
    assert list(columns) == [
        "Variant",
        "Seed",
        "Data",
        "experiment",
        "model.d_model",
        "optim.lr",
        "data.source.languages",
        "trainer.max_minutes",
    ]
    assert columns["experiment"] == "compare_attention_smoke"
    assert columns["model.d_model"] == 32 and columns["optim.lr"] == pytest.approx(5e-4)
    assert columns["trainer.max_minutes"] == "null"


def test_attention_json_is_a_distribution_per_target_token(run):
    record = json.loads((run / ATTENTION_FILE).read_text())
    assert len(record["examples"]) == 2
    for example in record["examples"]:
        weights = torch.tensor(example["weights"])
        assert weights.shape == (len(example["target"]), len(example["source"]))
        assert example["source"][-1] == example["target"][-1] == "</s>"
        assert (weights >= 0).all()
        # weights are stored to 4 decimals: a row's sum is off by at most S rounding errors
        rounding = 5e-5 * len(example["source"]) + 1e-6
        assert torch.allclose(weights.sum(dim=1), torch.ones(len(weights)), atol=rounding)
        assert len(example["heads"]) == 2
        # the Transformer plots the mean of its heads
        assert torch.allclose(torch.tensor(example["heads"]).mean(dim=0), weights, atol=1e-3)


@pytest.mark.parametrize(
    "model_overrides",
    [
        ("model=rnn", "model.embedding_size=16", "model.hidden_size=16"),
        ("model=transformer", "model.d_model=16", "model.ff_size=32"),
    ],
    ids=["rnn", "transformer"],
)
def test_examples_attention_equals_step_wise_decoding(tmp_path, model_overrides):
    """Teacher forcing on the model's own translation reproduces the attention that greedy
    search records step by step (an untrained model: long, arbitrary translations)."""
    sizes = ("data.source.train_size=50", "data.source.validation_size=4")
    cfg = compose_config(
        "train", "data=toy_copy", *sizes, *model_overrides, f"cache_dir={tmp_path}"
    )
    data = prepare_data(cfg.data, cfg.tokenizer, cfg.cache_dir, seed=0)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.tokenizer).eval()
    translator = Translator(data.tokenizer, torch.device("cpu"), "fp32", SEARCH)
    probe = AttentionExamples(data, translator, count=3)
    examples = probe(model)
    with pytest.raises(ValueError, match="logger.examples must be a non-negative integer"):
        AttentionExamples(data, translator, count=-1)

    batch = probe.batch
    nbest = decoding.search(
        model,
        batch.src,
        batch.src_lengths,
        SEARCH,
        bos_id=2,
        eos_id=3,
        return_attention=True,
    )
    assert len(examples) == 3
    for i, (example, hyps) in enumerate(zip(examples, nbest)):
        assert example.reference == data.references("validation")[i]
        assert example.target[:-1] == data.tokenizer.target_pieces(hyps[0].tokens)
        torch.testing.assert_close(
            torch.tensor(example.weights), hyps[0].attention, atol=2e-4, rtol=0
        )
