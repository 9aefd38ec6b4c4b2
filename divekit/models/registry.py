"""The model registry: one small registered function per model variant (timm's pattern)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..core.registry import Registry, call_with_known

MODELS = Registry("model")
register_model = MODELS.register


def create_model(name: str, *, context: dict[str, Any] | None = None, **overrides) -> nn.Module:
    """Build a registered model.

    `overrides` are the model's own keyword arguments (e.g. `num_classes=10`); an unknown one is
    an error. `context` holds facts from a dataset (`DataBundle.context`) of which the model
    takes those it accepts, so one call works for any model on any dataset.
    """
    entry = MODELS.get(name)
    return call_with_known(entry.factory, context or {}, overrides, f"model {name!r}")


def list_models(pattern: str = "*", tag: str | None = None) -> list[str]:
    """Names of registered models matching a glob pattern (and a tag, if given)."""
    return MODELS.names(pattern, tag)
