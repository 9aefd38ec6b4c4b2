"""`divekit list models|datasets [PATTERN]`: the registered names and their one-line descriptions."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit list`."""
    ls = sub.add_parser("list", help="list models or datasets")
    ls.add_argument("what", choices=("models", "datasets"))
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'res*'")
    ls.add_argument("--json", action="store_true", help="print the names as JSON")


def run(args) -> int:
    """Print the names matching the pattern."""
    # deferred for start-up time, and only the registry asked for (the datasets' modules load pillow ...)
    if args.what == "models":
        from ..models.registry import MODELS as registry
    else:
        from ..data.registry import DATASETS as registry

    names = registry.names(args.pattern)
    if args.json:
        print_json({args.what: names})
    else:
        width = max((len(n) for n in names), default=0)
        for n in names:
            print(f"{n:<{width}}  {registry.get(n).doc}")
    return 0
