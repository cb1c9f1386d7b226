"""`python -m seq2seq.train`: seed → data → model → Trainer.fit() → test evaluation.

Returns the best validation score, the number a Hydra sweep optimises.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.config import validate_config
from seq2seq.pipeline import build_model, build_trainer, checkpoint_extras, count_parameters
from seq2seq.reporting import command_line_overrides, variant_name, write_run_metrics
from seq2seq.training import checkpoint as ckpt
from seq2seq.training import distributed, runtime
from seq2seq.training.validation import SearchSettings, Validator

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> float:
    validate_config(cfg)
    # one process, or one of a torchrun job (each then trains on its share of every update)
    with distributed.join(runtime.pick_device(cfg.device)) as world:
        return _train(cfg, run_dir, world)


def _train(cfg: DictConfig, run_dir: Path, world: distributed.World) -> float:
    runtime.seed_everything(cfg.seed)
    device = world.device
    precision = runtime.resolve_precision(cfg.trainer.precision, device)
    runtime.configure_cpu(device, cfg.trainer.num_threads)

    data = distributed.prepare_shared_data(world, cfg.data, cfg.tokenizer, cfg.cache_dir, cfg.seed)
    model = build_model(cfg.model, data.tokenizer).to(device)
    search = SearchSettings(**cfg.search)
    greedy = Validator(data, device, precision, replace(search, beam_size=1))
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
        checkpoint_extras=checkpoint_extras(cfg, data.tokenizer),
        validator=greedy,
        device=device,
        world=world,
        logger=logger,
    )
    progress = trainer.fit()
    best_metric = progress.best_metric if progress.best_metric is not None else float("nan")
    if not world.is_main:  # rank 0 alone tests and writes the run's files
        return best_metric

    best = run_dir / ckpt.CHECKPOINT_DIR / ckpt.BEST
    if best.exists():
        model.load_state_dict(ckpt.load_checkpoint(best)["model"])
    tests = {"greedy": greedy.run(model, "test", progress=cfg.trainer.progress)}
    if search.beam_size > 1:
        beam = Validator(data, device, precision, search)
        tests[f"beam{search.beam_size}"] = beam.run(model, "test", progress=cfg.trainer.progress)
    metrics = write_run_metrics(run_dir, cfg, progress, count_parameters(model), tests, data)
    logger.finish(model, metrics)
    for name, result in tests.items():
        log.info(
            "test BLEU (%s): %.2f, exact match %.1f%%  %s",
            name,
            result.metrics["bleu"],
            result.metrics["exact_match"],
            result.bleu_signature,
        )
    return best_metric


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return train(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    sys.argv += distributed.hydra_overrides()  # ranks > 0 of a torchrun job write no run files
    main()
