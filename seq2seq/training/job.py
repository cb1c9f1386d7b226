"""One training run once its config is settled and its directory owned (seq2seq/train.py):
seed → data → model → Trainer.fit() → the best checkpoint on the test split → metrics.json.

Kept apart from train.py, which imports it when training starts, so that the command's
`--help` and config errors need none of torch.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq import checkpoint as ckpt
from seq2seq import runtime
from seq2seq.decoding import SearchSettings
from seq2seq.inference import ValidationResult, Validator
from seq2seq.pipeline import build_model, build_trainer, checkpoint_extras, count_parameters
from seq2seq.reporting import command_line_overrides, variant_name, write_run_metrics
from seq2seq.training import distributed
from seq2seq.training.distributed import World

log = logging.getLogger(__name__)


def run_training(
    cfg: DictConfig, run_dir: Path, world: World, resume: dict[str, Any] | None
) -> float:
    """Train (from `resume`, a checkpoint's payload, if given) and test; return the best
    validation score."""
    runtime.seed_everything(cfg.seed)
    # the name comparisons show: chosen when the run started (a resume may name no variant)
    variant = (resume or {}).get("variant") or variant_name(cfg)
    precision = runtime.resolve_precision(cfg.trainer.precision, world.device)
    runtime.configure_cpu(world.device, cfg.trainer.num_threads)

    data = distributed.prepare_shared_data(world, cfg.data, cfg.tokenizer, cfg.cache_dir, cfg.seed)
    model = build_model(cfg.model, data.tokenizer).to(world.device)
    search = SearchSettings(**cfg.search)
    greedy = Validator(data, world.device, precision, replace(search, beam_size=1))
    logger = instantiate(cfg.logger)(
        run_dir=run_dir,
        enabled=world.is_main,
        data=data,
        translator=greedy.translate,
        name=f"{variant_name(cfg)}_seed{cfg.seed}",  # the run's name in TensorBoard
        overrides=command_line_overrides(),  # HParams columns
    )
    trainer = build_trainer(
        cfg,
        model,
        data=data,
        run_dir=run_dir,
        checkpoint_extras={**checkpoint_extras(cfg, data.tokenizer), "variant": variant},
        validator=greedy,
        device=world.device,
        world=world,
        logger=logger,
        resume=resume,
    )
    progress = trainer.fit()
    if world.is_main:  # rank 0 alone tests and writes the run's files
        tests = _test_best(cfg, run_dir, model, greedy, search)
        parameters = count_parameters(model)
        logger.finish(
            model, write_run_metrics(run_dir, cfg, progress, parameters, tests, data, variant)
        )
    return progress.best_metric if progress.best_metric is not None else float("nan")


def _test_best(
    cfg: DictConfig, run_dir: Path, model: Any, greedy: Validator, search: SearchSettings
) -> dict[str, ValidationResult]:
    """The test split decoded by the best checkpoint's weights, greedily and, for a beam,
    with the configured search too."""
    best = run_dir / ckpt.CHECKPOINT_DIR / ckpt.BEST
    if best.exists():
        model.load_state_dict(ckpt.load_checkpoint(best)["model"])
    tests = {"greedy": greedy.run(model, "test", progress=cfg.trainer.progress)}
    if search.beam_size > 1:
        beam = Validator(greedy.data, greedy.device, greedy.precision, search)
        tests[f"beam{search.beam_size}"] = beam.run(model, "test", progress=cfg.trainer.progress)
    for name, result in tests.items():
        log.info(
            "test BLEU (%s): %.2f, exact match %.1f%%  %s",
            name,
            result.metrics["bleu"],
            result.metrics["exact_match"],
            result.bleu_signature,
        )
    return tests
