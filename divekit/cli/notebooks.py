"""`divekit notebooks [--out DIR] [--force]`: copy the chapter notebooks out of the package."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit notebooks`."""
    nb = sub.add_parser("notebooks", help="copy the chapter notebooks (one per book chapter) into a folder",
                        description="Copy divekit's chapter notebooks into DIR, to open them in Jupyter.")
    nb.add_argument("--out", default="notebooks", metavar="DIR", help="the folder to copy them to (default: notebooks/)")
    nb.add_argument("--force", action="store_true", help="replace notebooks already in DIR (your edits there are lost)")
    nb.add_argument("--json", action="store_true", help="print the copied files as JSON")


def run(args) -> int:
    """Copy the notebooks and list them."""
    from ..apps.notebooks import copy_notebooks  # deferred for start-up time: loaded when the verb runs

    copied = copy_notebooks(args.out, overwrite=args.force)
    if args.json:
        print_json({"out": args.out, "notebooks": [p.name for p in copied]})
    else:
        for p in copied:
            print(p)
        print(f"{len(copied)} notebooks in {args.out}: open them with `jupyter lab {args.out}`")
    return 0
