"""The model registry: one small registered function per model variant (timm's pattern)."""

from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn

from ..core.errors import ConfigError
from ..core.registry import Registry, call_with_known

MODELS = Registry("model")
register_model = MODELS.register


def create_model(name: str, *, context: dict[str, Any] | None = None, **overrides) -> nn.Module:
    """Build a registered model.

    `overrides` are the model's own keyword arguments (e.g. `num_classes=10`); an unknown one is
    an error. `context` holds facts from a dataset (`DataBundle.context`) of which the model
    takes those it accepts, so one call works for any model on any dataset. An error the factory
    raises on the overrides (a negative width, a wrong type) is a ConfigError naming them.
    """
    entry = MODELS.get(name)
    try:
        return call_with_known(entry.factory, context or {}, overrides, f"model {name!r}")
    except (RuntimeError, ValueError, TypeError) as e:
        if not overrides or isinstance(e, ConfigError):
            raise
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        takes = ", ".join(k for k, p in inspect.signature(entry.factory).parameters.items()
                          if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        raise ConfigError(f"model {name!r} cannot be built with {given}: {str(e).splitlines()[0]}. "
                          f"Check the values (its keyword arguments: {takes})") from None


def list_models(pattern: str = "*", tag: str | None = None) -> list[str]:
    """Names of registered models matching a glob pattern (and a tag, if given)."""
    return MODELS.names(pattern, tag)
