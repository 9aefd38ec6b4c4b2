"""Training: the typed config and recipes, the trainer and its callbacks, fine-tuning, evaluation,
and the train/fit entry points (divekit.train.api)."""
