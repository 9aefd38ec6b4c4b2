"""`divekit demo [NAME]`: run one of the book's small experiments and save its plots."""

from __future__ import annotations

import json
from pathlib import Path

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit demo`."""
    dm = sub.add_parser("demo", help="run one of the book's small experiments and save its plots")
    dm.add_argument("name", nargs="?", help="demo name; omit to list them")
    dm.add_argument("--out", default="demos", help="folder for the plots (default: demos/)")
    dm.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args) -> int:
    """List the demos, or run one and print its figures."""
    # deferred for start-up time: the demos import torch and the trainer
    from ..book.demos import DEMOS, run_demo

    if args.name is None:
        if args.json:
            print_json({"demos": sorted(DEMOS)})
        else:
            for name in sorted(DEMOS):
                print(f"{name:<14s} {(DEMOS[name].__doc__ or '').splitlines()[0]}")
        return 0
    result = run_demo(args.name, Path(args.out) / args.name)
    if args.json:
        print_json(result)
    else:
        print(json.dumps(result, indent=2, default=str))
    return 0
