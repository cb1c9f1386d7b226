"""One training run once its config is settled and its directory owned (seq2seq/train.py):
seed → data → model → Trainer.fit() → the best checkpoint on the test split → metrics.json.

`prepare_run`, `run_logger` and `run_trainer` build a run's parts from its config; the speed
benchmark (seq2seq/bench/measure.py) builds its runs with them too, so that what it times is
what `python -m seq2seq.train` trains.

Kept apart from train.py, which imports it when training starts, so that the command's
`--help` and config errors need none of torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq import checkpoint as ckpt
from seq2seq import runtime
from seq2seq.data import PreparedData
from seq2seq.decoding import SearchSettings
from seq2seq.inference import ValidationResult, Validator
from seq2seq.models.interface import Seq2SeqModel
from seq2seq.pipeline import build_model, build_trainer, checkpoint_extras, count_parameters
from seq2seq.reporting import command_line_overrides, variant_name, write_run_metrics
from seq2seq.training import distributed
from seq2seq.training.distributed import World

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What a run trains and validates with, built from its config."""

    data: PreparedData
    model: Seq2SeqModel
    precision: str
    search: SearchSettings  # the configured search, for the test split
    greedy: Validator  # validation during training decodes greedily


def run_training(
    cfg: DictConfig, run_dir: Path, world: World, resume: dict[str, Any] | None
) -> float:
    """Train (from `resume`, a checkpoint's payload, if given) and test; return the best
    validation score."""
    # the name comparisons show: chosen when the run started (a resume may name no variant)
    variant = (resume or {}).get("variant") or variant_name(cfg)
    run = prepare_run(cfg, world)
    logger = run_logger(cfg, run_dir, world, run)
    extras = {**checkpoint_extras(cfg, run.data.tokenizer), "variant": variant}
    trainer = run_trainer(cfg, run, run_dir, world, logger, extras, resume)
    progress = trainer.fit()
    if world.is_main:  # rank 0 alone tests and writes the run's files
        tests = _test_best(cfg, run_dir, run)
        parameters = count_parameters(run.model)
        logger.finish(
            run.model,
            write_run_metrics(run_dir, cfg, progress, parameters, tests, run.data, variant),
        )
    return progress.best_metric if progress.best_metric is not None else float("nan")


def prepare_run(cfg: DictConfig, world: World) -> Run:
    """Seed, precision and threads, then the data (rank 0's tokenizer on every rank) and the
    model on the world's device."""
    runtime.seed_everything(cfg.seed)
    precision = runtime.resolve_precision(cfg.trainer.precision, world.device)
    runtime.configure_cpu(world.device, cfg.trainer.num_threads)
    data = distributed.prepare_shared_data(world, cfg.data, cfg.tokenizer, cfg.cache_dir, cfg.seed)
    model = build_model(cfg.model, data.tokenizer).to(world.device)
    search = SearchSettings(**cfg.search)
    decoding = runtime.resolve_decoding_precision(cfg.trainer.precision, world.device)
    greedy = Validator(data, world.device, decoding, replace(search, beam_size=1))
    return Run(data, model, precision, search, greedy)


def run_logger(cfg: DictConfig, run_dir: Path, world: World, run: Run) -> Any:
    """The configured logger of the run (TensorBoard), on rank 0 only."""
    return instantiate(cfg.logger)(
        run_dir=run_dir,
        enabled=world.is_main,
        data=run.data,
        translator=run.greedy.translate,
        name=f"{variant_name(cfg)}_seed{cfg.seed}",  # the run's name in TensorBoard
        overrides=command_line_overrides(),  # HParams columns
    )


def run_trainer(  # noqa: PLR0913 - the run's parts, each built apart
    cfg: DictConfig,
    run: Run,
    run_dir: Path,
    world: World,
    logger: Any,
    extras: dict[str, Any],
    resume: dict[str, Any] | None = None,
) -> Any:
    """The configured Trainer of `run`; `extras` go into every checkpoint it writes."""
    return build_trainer(
        cfg,
        run.model,
        data=run.data,
        run_dir=run_dir,
        checkpoint_extras=extras,
        validator=run.greedy,
        device=world.device,
        world=world,
        logger=logger,
        resume=resume,
    )


def _test_best(cfg: DictConfig, run_dir: Path, run: Run) -> dict[str, ValidationResult]:
    """The test split decoded by the best checkpoint's weights, greedily and, for a beam,
    with the configured search too."""
    best = run_dir / ckpt.CHECKPOINT_DIR / ckpt.BEST
    if best.exists():
        run.model.load_state_dict(ckpt.load_checkpoint(best)["model"])
    greedy, search = run.greedy, run.search
    tests = {"greedy": greedy.run(run.model, "test", progress=cfg.trainer.progress)}
    if search.beam_size > 1:
        beam = Validator(greedy.data, greedy.device, greedy.precision, search)
        tests[f"beam{search.beam_size}"] = beam.run(
            run.model, "test", progress=cfg.trainer.progress
        )
    for name, result in tests.items():
        log.info(
            "test BLEU (%s): %.2f, exact match %.1f%%  %s",
            name,
            result.metrics["bleu"],
            result.metrics["exact_match"],
            result.bleu_signature,
        )
    return tests
