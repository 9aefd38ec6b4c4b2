"""Recipes: named, complete training settings (`divekit train --recipe NAME`).

A recipe is a set of TrainConfig fields, model and dataset included, that reproduces a measured
result; flags given with it still override its fields. Figures for each are in docs/RESULTS.md.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, did_you_mean

RECIPES: dict[str, dict[str, Any]] = {
    # >= 92% Fashion-MNIST test accuracy in under 120 s of wall time on a 2-core CPU
    "fast": {"model": "fastnet", "data": "fashion-mnist"},
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"unknown --recipe {name!r}.{did_you_mean(name, RECIPES)} Known: {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])
