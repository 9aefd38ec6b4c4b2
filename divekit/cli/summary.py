"""`divekit summary MODEL`: layer-by-layer output shapes, windows, receptive fields, parameters and multiply-adds."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register `divekit summary`."""
    sm = sub.add_parser("summary", help="layer-by-layer output shapes, windows, receptive fields, parameters and "
                       "multiply-adds of a model")
    sm.add_argument("model", help="model name (see `divekit list models`)")
    sm.add_argument("--input-shape", default=None, help="C,H,W of one example, e.g. 1,28,28; default: 1 channel at "
                    "the model's default --resize, else 28x28")
    sm.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")


def run(args) -> int:
    """Print the model's summary."""
    # deferred for start-up time: the summary builds the model with torch
    from ..models.summary import summary_main

    return summary_main(args.model, args.input_shape, json=args.json)
