"""A run's record: `metrics.json` and the test hypotheses next to their references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seq2seq.evaluation import write_json, write_lines


def variant_name(cfg: DictConfig) -> str:
    """The name a comparison shows for this run: the `variant` config chosen (sweeps of
    experiment=compare_attention), else the attention (RNN) or model config chosen."""
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        if choices.get("variant"):
            return str(choices["variant"])
        if "attention" in cfg.model and choices.get("model/attention"):
            return str(choices["model/attention"])
        return str(choices.get("model", "model"))
    target = cfg.model.attention._target_ if "attention" in cfg.model else cfg.model._target_
    return target.rsplit(".", 1)[-1]


def command_line_overrides() -> list[str]:
    """The run's overrides from the command line (`optim.lr=1e-3`), in a Hydra job."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def write_run_metrics(  # noqa: PLR0913
    run_dir: Path,
    cfg: DictConfig,
    progress: Any,
    parameters: int,
    tests: dict,
    data: Any,
    variant: str | None = None,
) -> dict[str, Any]:
    """Write the run's metrics.json and test hypotheses; return the metrics. `variant`: the
    name the run started with (a resumed run's command line may choose no variant)."""
    write_lines(run_dir / "test.src", data.sources("test"))
    write_lines(run_dir / "test.ref", data.references("test"))
    for name, result in tests.items():
        write_lines(run_dir / f"test.{name}.hyp", result.hypotheses)
    metrics = {
        "variant": variant or variant_name(cfg),
        "seed": cfg.seed,
        "parameters": parameters,
        "train": {
            "updates": progress.update,
            "epochs": progress.epoch,
            "seconds": progress.train_seconds,  # validation included
            "update_seconds": progress.update_seconds,
            "tgt_tokens": progress.tgt_tokens,
            # updates only: validation decodes at a speed of its own for every variant
            "tgt_tokens_per_second": progress.tgt_tokens / max(progress.update_seconds, 1e-9),
            "stop_reason": progress.stop_reason,
            "early_stopping_metric": cfg.trainer.early_stopping_metric,
            "best_metric": progress.best_metric,
            "best_update": progress.best_update,
        },
        "validations": progress.validations,
        "test": {
            name: {**result.metrics, "bleu_signature": result.bleu_signature}
            for name, result in tests.items()
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
        "machine": _machine(),  # what the study's report says its runs ran on, and when
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _machine() -> dict[str, Any]:
    """CPU, torch and the date at the end of the run, as the benchmark records them (less its
    load average, which it takes at the start of a measurement: here it would be the end)."""
    from seq2seq.bench import machine  # at call time: bench imports the training stack

    return {key: value for key, value in machine().items() if key != "load_average_start"}
