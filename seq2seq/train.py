"""`python -m seq2seq.train`: check the config, own the run directory, settle what a resume
continues, then train and test (training/job.py: seed → data → model → Trainer.fit() → test).

Returns the best validation score, the number a Hydra sweep optimises. With `trainer.resume`
the run continues in its own directory, owned by this process (see training/run_dir.py), with
its checkpoint's config and the settings this command line changes (training/resume.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seq2seq import cli, variants
from seq2seq.training import run_dir as run_dirs

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
    from seq2seq.training.job import run_training
    from seq2seq.training.resume import continued_config

    runtime.end_with_launcher()  # a killed `make study` takes its sweep's workers with it
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
        return run_training(cfg, run_dir, world, payload)


run_dirs.register_resolvers()  # configs/train.yaml's hydra.run.dir and hydra.output_subdir use them
variants.register()  # the `variant` group: configs/model/attention/* and the Transformer
cli.share_help_repository()  # --help lists the config groups from one repository copy


# cli.reports_errors's wrapper lies in seq2seq/ too, so Hydra finds ../configs from it as well
@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
@cli.reports_errors
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    return train(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))


if __name__ == "__main__":
    sys.argv += run_dirs.other_rank_overrides()  # ranks > 0 of a torchrun job write no run files
    main()
