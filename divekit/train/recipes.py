"""Recipes: named, complete training settings (`divekit train --recipe NAME`).

A recipe is a set of TrainConfig fields, model and dataset included, that reproduces a measured
result; flags given with it still override its fields. Figures for each are in docs/RESULTS.md.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError, did_you_mean

RECIPES: dict[str, dict[str, Any]] = {
    # >= 92% Fashion-MNIST test accuracy in under a minute of wall time on a 2-core CPU (docs/RESULTS.md)
    "fast": {"model": "fastnet", "data": "fashion-mnist"},
    # held-out perplexity < 5 on The Time Machine (characters) in under 5 minutes on a 2-core CPU
    "char-lstm": {"model": "lstm", "data": "time-machine", "epochs": 15, "optimizer": "adam", "lr": 0.004,
                  "scheduler": "cosine", "batch_size": 64, "grad_clip": 1.0, "data_args": {"num_steps": 64},
                  "model_args": {"num_hiddens": 256, "num_layers": 2, "embedding_dim": 64, "dropout": 0.3}},
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"unknown --recipe {name!r}.{did_you_mean(name, RECIPES)} Known: {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])
