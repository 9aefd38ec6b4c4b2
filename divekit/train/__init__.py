"""Training: the trainer, its callbacks, checkpoints, and the train/fit entry points."""
