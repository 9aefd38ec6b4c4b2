"""Name -> factory registries for models and datasets (timm's `register_model` pattern).

A registry maps a lowercase-dashed name to a small factory function plus defaults that the
trainer applies (for example the book's learning rate for that model).
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)  # training-config defaults for this entry
    tags: tuple[str, ...] = ()
    # a model's defaults on one dataset, over `defaults` (book 14.1's settings for resnet18 on cifar10)
    per_data: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.factory) or "").split("\n")[0]


class Registry:
    """A named collection of factories: `register`, `get`, `names(pattern)`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, defaults: dict[str, Any] | None = None, tags=(),
                 per_data: dict[str, dict[str, Any]] | None = None):
        """Decorator: register `fn` under `name` with optional training defaults, tags, and defaults
        that apply on one dataset only (`per_data`: dataset name -> defaults)."""
        if name != name.lower() or "_" in name or " " in name:
            raise ValueError(f"{self.kind} names are lowercase with dashes, got {name!r}")

        def deco(fn):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, fn, dict(defaults or {}), tuple(tags), dict(per_data or {}))
            return fn

        return deco

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                f"Run `divekit list {self.kind}s` to see all {len(self._entries)}."
            )
        return self._entries[name]

    def names(self, pattern: str = "*", tag: str | None = None) -> list[str]:
        return sorted(
            n for n, e in self._entries.items() if fnmatch.fnmatch(n, pattern) and (tag is None or tag in e.tags)
        )

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries.values())


def call_with_known(fn: Callable, context: dict[str, Any], overrides: dict[str, Any], what: str):
    """Call `fn` with the `context` keywords it accepts plus all `overrides` (which must be accepted).

    `context` holds facts the data provides (num_classes, in_shape, vocab_size ...): a factory
    takes those it needs. `overrides` come from the user, so an unknown one is an error.
    """
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in overrides if k not in params and not takes_any]
    if unknown:
        accepted = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        raise ConfigError(f"{what} does not take {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")
    kwargs = {k: v for k, v in context.items() if k in params or takes_any}
    kwargs.update(overrides)
    return fn(**kwargs)
