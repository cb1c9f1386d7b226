"""The reference models of the benchmark: `configs/bench/<name>.yaml`, one file each (what a
file holds: configs/bench/README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
MODELS_DIR = CONFIG_DIR / "bench"
GOALS = ("train", "beam")  # training tokens/s and beam-search sentences/s over JoeyNMT's

NEVER = 10**9  # updates: validation and checkpoints stay out of the measured window


@dataclass(frozen=True)
class BenchModel:
    name: str
    overrides: tuple[str, ...]  # of configs/train.yaml
    joeynmt: str  # its JoeyNMT peer's config name
    goals: dict[str, float]  # GOALS -> ratio over JoeyNMT's speed to reach


def reference_models(directory: Path = MODELS_DIR) -> dict[str, BenchModel]:
    """Every model of `directory`, by name, in name order."""
    return {path.stem: load_model(path) for path in sorted(directory.glob("*.yaml"))}


def load_model(path: Path) -> BenchModel:
    """One model file; a missing or mistyped key is an error naming the file."""
    raw = OmegaConf.to_container(OmegaConf.load(path))
    missing = {"overrides", "joeynmt", "goals"} - set(raw or {})
    if missing:
        raise ValueError(f"{path}: missing {', '.join(sorted(missing))} (configs/bench/README.md)")
    if not isinstance(raw["overrides"], list) or not isinstance(raw["goals"], dict):
        raise ValueError(f"{path}: overrides must be a list and goals a mapping")
    if sorted(raw["goals"]) != sorted(GOALS):
        raise ValueError(
            f"{path}: goals must give {' and '.join(GOALS)}, got {sorted(raw['goals'])}"
        )
    goals = {key: float(raw["goals"][key]) for key in GOALS}
    return BenchModel(path.stem, tuple(map(str, raw["overrides"])), str(raw["joeynmt"]), goals)


def compose_train_config(model: BenchModel, overrides: list[str], updates: int) -> DictConfig:
    """The train config of `model` as the bench runs it: its overrides, then the caller's, then
    the bench's own budget (`updates` updates, no validation, checkpoint or progress bar)."""
    budget = [
        f"trainer.max_updates={updates}",
        f"trainer.validate_every={NEVER}",
        f"trainer.checkpoint_every={NEVER}",
        "trainer.progress=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", [*model.overrides, *overrides, *budget])
