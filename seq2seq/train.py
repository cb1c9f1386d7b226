"""`python -m seq2seq.train`: seed → data → model → Trainer.fit() → test evaluation.

Returns the best validation score, the number a Hydra sweep optimises. With `trainer.resume`
the run continues in its own directory, owned by this process (see training/run_dir.py), with
its checkpoint's config and the settings this command line changes (training/resume.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq import cli
from seq2seq.training import run_dir as run_dirs

if TYPE_CHECKING:
    from seq2seq.training.distributed import World

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] | None = None) -> float:
    """Train in `run_dir`; `overrides` are the command line's (None: `cfg` is meant as a whole,
    also at resume)."""
    # training's modules (torch and all) are imported when training starts, not with this
    # module, so that `python -m seq2seq.train --help` answers at once
    from seq2seq import checkpoint as ckpt
    from seq2seq import runtime
    from seq2seq.config import validate_config, validate_entry_config
    from seq2seq.training import distributed
    from seq2seq.training.resume import continued_config

    new_run = cfg.trainer.resume is None
    if new_run:
        validate_config(cfg)
    else:  # the whole config is the checkpoint's with the command line's changes, checked below
        validate_entry_config(cfg)
    # one process, or one of a torchrun job (each then trains on its share of every update)
    with (
        distributed.join(runtime.pick_device(cfg.device)) as world,
        run_dirs.RunLock(run_dir, enabled=world.is_main),
    ):
        source = world.from_main(lambda: run_dirs.resume_source(cfg.trainer.resume, run_dir))
        if source == run_dirs.FINISHED:
            log.info("%s: already finished (its metrics.json), nothing to train", run_dir)
            return run_dirs.finished_metric(run_dir)
        payload = None
        if source is not None:  # rank 0 reads it: other nodes need not see the file
            payload = world.from_main(
                lambda: ckpt.require_training_state(ckpt.load_checkpoint(source))
            )
            cfg = continued_config(cfg, payload["config"], overrides, payload.get("config_raw"))
        if not new_run:
            validate_config(cfg)
        return _train(cfg, run_dir, world, payload)


def _train(cfg: DictConfig, run_dir: Path, world: World, resume: dict[str, Any] | None) -> float:
    from seq2seq import checkpoint as ckpt
    from seq2seq import runtime
    from seq2seq.decoding import SearchSettings
    from seq2seq.inference import Validator
    from seq2seq.pipeline import build_model, build_trainer, checkpoint_extras, count_parameters
    from seq2seq.reporting import command_line_overrides, variant_name, write_run_metrics
    from seq2seq.training import distributed

    runtime.seed_everything(cfg.seed)
    # the name comparisons show: chosen when the run started (a resume may name no variant)
    variant = (resume or {}).get("variant") or variant_name(cfg)
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
        checkpoint_extras={**checkpoint_extras(cfg, data.tokenizer), "variant": variant},
        validator=greedy,
        device=device,
        world=world,
        logger=logger,
        resume=resume,
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
    parameters = count_parameters(model)
    metrics = write_run_metrics(run_dir, cfg, progress, parameters, tests, data, variant)
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


run_dirs.register_resolvers()  # configs/train.yaml's hydra.run.dir and hydra.output_subdir use them


# cli.reports_errors's wrapper lies in seq2seq/ too, so Hydra finds ../configs from it as well
@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
@cli.reports_errors
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    return train(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))


if __name__ == "__main__":
    sys.argv += run_dirs.other_rank_overrides()  # ranks > 0 of a torchrun job write no run files
    main()
