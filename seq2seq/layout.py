"""Where a run directory keeps its checkpoints: names that the light modules (the run-directory
resolvers Hydra calls while it composes a config) share with checkpoint.py, without its torch."""

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
