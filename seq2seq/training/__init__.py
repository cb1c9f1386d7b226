"""The model-agnostic training loop, its schedules and checkpoints."""
