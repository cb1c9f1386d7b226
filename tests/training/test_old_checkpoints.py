"""Checkpoints written before models/ was laid out as two families still load and resume.

Their stored config names modules that moved (`seq2seq.models.attention.*`,
`seq2seq.models.wiring.*`) and the RNN's options by their old names (`encoder_layers`,
`decoder_layers`, `tie_embeddings`); `seq2seq.checkpoint.migrate_config` rewrites both on load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from support import compose_config

from seq2seq import checkpoint as ckpt
from seq2seq.pipeline import load_trained
from seq2seq.train import train

TINY_RNN = (
    "data=toy_copy",
    "data.source.train_size=200",
    "data.source.validation_size=20",
    "data.source.test_size=20",
    "data.max_tokens=400",
    "model=rnn",
    "model/attention=luong_general",
    "model.embedding_size=16",
    "model.hidden_size=16",
    "model.num_decoder_layers=2",
    "model.bidirectional=false",
    "model.tie_output=true",
    "search=greedy",
    "trainer.progress=false",
    "trainer.log_every=5",
    "trainer.validate_every=1000",
    "trainer.num_threads=1",
)


def old_format(model: dict) -> dict:
    """The model config as checkpoints stored it before the rename, written out literally."""
    old_names = {
        "num_encoder_layers": "encoder_layers",
        "num_decoder_layers": "decoder_layers",
        "tie_output": "tie_embeddings",
    }
    old = {old_names.get(key, key): value for key, value in model.items()}
    assert model["attention"]["_target_"] == "seq2seq.models.rnn.attention.LuongGeneralAttention"
    assert model["decoder"]["_target_"] == "seq2seq.models.rnn.wiring.make_wiring"
    old["attention"] = {
        **model["attention"],
        "_target_": "seq2seq.models.attention.LuongGeneralAttention",
    }
    old["decoder"] = {**model["decoder"], "_target_": "seq2seq.models.wiring.make_wiring"}
    return old


def rewrite_in_old_format(file: Path) -> dict:
    payload = torch.load(file, map_location="cpu", weights_only=False)
    today = {key: payload[key] for key in ("config", "config_raw")}
    for key in today:
        payload[key] = {**payload[key], "model": old_format(payload[key]["model"])}
    assert payload["config"]["model"]["decoder_layers"] == 2
    ckpt.save_checkpoint(payload, file)
    return today


def test_an_rnn_checkpoint_in_the_old_format_loads_and_resumes(tmp_path):
    run, cache = tmp_path / "run", f"cache_dir={tmp_path / 'cache'}"
    train(compose_config("train", *TINY_RNN, cache, "trainer.max_updates=3"), run)
    last = run / "checkpoints" / ckpt.LAST
    today = rewrite_in_old_format(last)

    payload = ckpt.load_checkpoint(last)
    assert {key: payload[key] for key in today} == today  # migrated back to today's names
    model, _, cfg = load_trained(last, torch.device("cpu"))
    assert cfg.model.num_decoder_layers == 2 and "tie_embeddings" not in cfg.model
    assert model.output_layer.weight is model.tgt_embed.weight  # tie_output took effect
    saved = payload["model"]
    assert all(torch.equal(saved[name], p) for name, p in model.state_dict().items())

    overrides = [f"trainer.resume={run}", "trainer.max_updates=5"]
    train(compose_config("train", *TINY_RNN, cache, *overrides), run, overrides=overrides)
    resumed = ckpt.load_checkpoint(last)
    assert resumed["progress"]["update"] == 5
    assert resumed["config"]["model"] == today["config"]["model"]


def test_todays_config_passes_through_unchanged():
    cfg = compose_config("train", *TINY_RNN)
    config = OmegaConf.to_container(cfg, resolve=True)
    assert ckpt.migrate_config(config) == config
