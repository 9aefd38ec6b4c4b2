"""`divekit bench MODEL`: training and inference throughput with each speed switch (see divekit.apps.bench)."""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path

from ..train.config import SPEED_SWITCHES
from .common import device, print_json


def _doc(module: str) -> str:
    """A module's docstring without importing it (divekit.apps.bench loads torch; `--help` should not)."""
    spec = importlib.util.find_spec(module)
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text()))


def add_parser(sub) -> None:
    """Register `divekit bench`."""
    b = sub.add_parser("bench", help="examples/s for training and inference with each speed switch",
                       description=_doc("divekit.apps.bench"), formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("model", help="model name (see `divekit list models`)")
    b.add_argument("--data", help="measure on this dataset's batches (default: synthetic inputs of the shape of "
                   "the model's dataset)")
    b.add_argument("--steps", type=int, default=20, help="timed steps per repeat (default 20)")
    b.add_argument("--warmup", type=int, default=3, help="untimed steps before timing each switch (default 3)")
    b.add_argument("--repeats", type=int, default=3, help="timed runs per switch: mean and std over them (default 3)")
    b.add_argument("--batch-size", type=int, help="default: the model's")
    b.add_argument("--resize", type=int, help="resize images to RESIZE x RESIZE (default: the model's)")
    b.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    b.add_argument("--switches", help="comma-separated switches, a+b to combine: " + ", ".join(SPEED_SWITCHES)
                   + " (default: all that apply here; compile only with --compile)")
    b.add_argument("--compile", action="store_true", help="also measure torch.compile (compiling takes a while)")
    b.add_argument("--data-dir", help="dataset cache folder")
    b.add_argument("--json", action="store_true", help="print the results as one JSON object")


def run(args) -> int:
    """Measure and print the table (or the JSON object)."""
    from ..apps.bench import bench, format_table  # deferred for start-up time: loaded when the verb runs

    result = bench(args.model, data=args.data, steps=args.steps, warmup=args.warmup, repeats=args.repeats,
                   batch_size=args.batch_size, resize=args.resize, device=args.device, switches=args.switches,
                   with_compile=args.compile, data_dir=args.data_dir)
    if args.json:
        print_json(result)
    else:
        print(format_table(result))
    return 0
