"""Helpers shared by the verb modules: the argument parser class, KEY=VALUE options, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import json

from ..core.errors import ConfigError
from ..train.config import check_device


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line `divekit: error: ...` on stderr (exit status 2)."""

    def error(self, message: str):
        """Print the error in divekit's one-line form and exit with status 2."""
        self.exit(2, f"divekit: error: {message} (see `{self.prog} --help`)\n")


def key_value(text: str) -> tuple[str, object]:
    """Parse a KEY=VALUE option: JSON (0.5, true, [16, 32]), a comma-separated list of JSON values
    (widths=16,32,64), else the string itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for candidate in (value, f"[{value}]") if "," in value else (value,):
        with contextlib.suppress(ValueError):
            return key.strip(), json.loads(candidate)
    return key.strip(), value


def print_json(obj) -> None:
    """Print `obj` as one line of JSON (values JSON cannot hold are written as strings)."""
    print(json.dumps(obj, default=str))



def device(text: str) -> str:
    """A --device value: auto, cpu, cuda, cuda:N or mps."""
    try:
        return check_device(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--device ")) from None
