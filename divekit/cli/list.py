"""`divekit list models|datasets [PATTERN]`: the registered names and their one-line descriptions.

The names and descriptions are read from `catalog.json` beside this module, written from the
registries by `write_catalog()`: listing them then loads no torch (0.1 s against 1-2 s for the
registries themselves). tests/cli/test_list.py fails, saying how to rewrite it, when the catalog and
the registries differ.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from .common import print_json

CATALOG = Path(__file__).with_name("catalog.json")
KINDS = ("models", "datasets")


def add_parser(sub) -> None:
    """Register `divekit list`."""
    ls = sub.add_parser("list", help="list models or datasets")
    ls.add_argument("what", choices=KINDS)
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'res*'")
    ls.add_argument("--json", action="store_true", help="print the names as JSON")


def registered() -> dict[str, dict[str, str]]:
    """{"models": {name: one-line description}, "datasets": {...}} from the registries (loads torch)."""
    from ..data import DATASETS  # the packages import every module that registers
    from ..models import MODELS

    return {kind: {name: registry.get(name).doc for name in registry.names()}
            for kind, registry in zip(KINDS, (MODELS, DATASETS))}


def write_catalog() -> Path:
    """Write catalog.json from the registries: run after adding, renaming or redescribing a model or dataset
    (`python -c "from divekit.cli.list import write_catalog; write_catalog()"`)."""
    CATALOG.write_text(json.dumps(registered(), indent=1, sort_keys=True) + "\n")
    return CATALOG


def run(args) -> int:
    """Print the names matching the pattern."""
    described = json.loads(CATALOG.read_text())[args.what]
    names = sorted(n for n in described if fnmatch.fnmatch(n, args.pattern))
    if args.json:
        print_json({args.what: names})
    else:
        width = max((len(n) for n in names), default=0)
        for n in names:
            print(f"{n:<{width}}  {described[n]}")
    return 0
