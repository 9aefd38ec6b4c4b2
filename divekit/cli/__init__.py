"""The `divekit` command: divekit VERB ... (train, eval, predict, generate, list, data ...).

Each verb is a module of this package (VERBS) that defines `add_parser(sub)`, which registers its
subparser, and `run(args) -> int`. Every verb that produces results takes --json and then prints one
JSON object with its final figures as the last line of stdout. Errors in the input print one line
`divekit: error: ...` naming the problem and the fix (no traceback) and exit with status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

from ..core.errors import DivekitError
from .common import ArgumentParser, print_json

# verb modules, in the order `divekit --help` lists them; the verb is the module name with dashes
VERBS = ("train", "eval", "predict", "generate", "translate", "list", "summary", "kaggle_house", "demo", "data",
         "bench", "detect", "segment", "stylize", "embed", "notebooks")


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> ArgumentParser:
    """The parser of every verb."""
    p = ArgumentParser(prog="divekit", description="Train and use the models of Dive into Deep Learning.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERBS:
        _module(name).add_parser(sub)
    return p


def _process_group(args):
    """Under torchrun, `divekit train` joins the process group for its run (see divekit.core.dist)."""
    if args.verb != "train":
        return contextlib.nullcontext()
    from ..core import dist  # deferred for start-up time: loaded when the verb runs

    return dist.process_group(device=args.device or "auto")


def main(argv: list[str] | None = None) -> int:
    """Run `divekit ARGV...`; returns the exit status (2 for bad input, with a one-line message)."""
    args = build_parser().parse_args(argv)
    try:
        with _process_group(args):
            return _module(args.verb.replace("-", "_")).run(args)
    except DivekitError as e:
        print(f"divekit: error: {e}", file=sys.stderr)
        if getattr(args, "json", False):
            print_json({"error": str(e), "kind": type(e).__name__})
        return 2
    except KeyboardInterrupt:
        print("divekit: interrupted; the last finished epoch's checkpoint is in the run folder (use --resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early, e.g. `divekit list models | head -1`
        # Python's advice: point stdout at devnull so the flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's status for a process ended by SIGPIPE (128 + 13)


def entry() -> None:
    """The `divekit` command (and `python -m divekit`): main(), then exit without the interpreter's teardown.

    Tearing down a process that loaded torch (freeing its modules and unmapping libtorch) took
    0.4-1.9 s here, longer than many runs train (benchmarks/process_profile.py). Everything divekit
    writes is complete by then (checkpoints are written, fsynced and renamed before `fit` returns),
    so only the standard streams need a flush before `os._exit`. Under a profiler or tracer
    (`python -m cProfile -o out.prof -m divekit ...`, coverage) the process exits normally, so that
    their atexit handlers write what they measured.
    """
    code = main()  # argparse's --help and usage errors leave through SystemExit, before torch is loaded
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    os._exit(code)


if __name__ == "__main__":
    entry()
