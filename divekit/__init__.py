"""divekit: Dive into Deep Learning as a real toolkit.

    import divekit as dk
    result = dk.train(model="softmax-regression", data="fashion-mnist", epochs=10)
    dk.list_models("res*"); dk.create_model("softmax-regression", num_classes=10, in_shape=(1, 28, 28))

The names below load on first use (PEP 562), so `import divekit` and `divekit --help` do not pay for
torch (about 1.5 s) until something needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib as _importlib
import os as _os
import sys as _sys
import time as _time
import typing as _typing


def _busy_elsewhere(interval: float = 0.05, stat: str = "/proc/stat") -> float:
    """How many cores' worth of CPU other processes used over the next `interval` seconds (this one
    sleeps meanwhile), from the kernel's counters; 0.0 where they cannot be read (not Linux)."""
    def busy_total():
        with open(stat) as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        return user + nice + system + irq + softirq, user + nice + system + idle + iowait + irq + softirq + steal

    try:
        (b0, t0), _ = busy_total(), _time.sleep(interval)
        b1, t1 = busy_total()
    except (OSError, ValueError):
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1) * (_os.cpu_count() or 1)


def _choose_wait_policy(busy_cores: float) -> str | None:
    """PASSIVE when another program is using half a core or more, else None (torch's default)."""
    return "PASSIVE" if busy_cores >= 0.5 else None


# GNU OpenMP reads its wait policy once, when torch loads it. Spinning idle threads (its default) keep
# small ops fast on a quiet machine (a GRU step is 3.8x slower with PASSIVE), but when another program
# holds a core they wait on it: a 2-thread LeNet step ran 3x slower. So, unless the user chose, divekit
# looks at the machine when it is imported, before torch, and lets threads sleep (PASSIVE) only when
# another program is busy then (benchmarks/busy_core.py, docs/RESULTS.md).
WAIT_POLICY = _os.environ.get("OMP_WAIT_POLICY")  # what this process runs with (None: torch's default)
if "torch" not in _sys.modules and WAIT_POLICY is None:
    WAIT_POLICY = _choose_wait_policy(_busy_elsewhere())
    if WAIT_POLICY is not None:
        _os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY

# public name -> the module that defines it (relative to this package)
_EXPORTS = {
    "io": ".core.io", "init": ".ops.init",  # modules
    **dict.fromkeys(("best_device", "num_gpus", "to_device"), ".core.device"),
    **dict.fromkeys(("ConfigError", "DataError", "DivekitError", "TrainingDiverged"), ".core.errors"),
    **dict.fromkeys(("load", "load_params", "save", "save_params"), ".core.io"),
    **dict.fromkeys(("DataBundle", "TensorLoader", "list_datasets", "load_dataset"), ".data"),
    **dict.fromkeys(("create_model", "list_models"), ".models"),
    **dict.fromkeys(("Result", "fit", "load_run", "train"), ".train.api"),
    **dict.fromkeys(("Callback", "StopTraining"), ".train.callbacks"),
    "TrainConfig": ".train.config", "Trainer": ".train.trainer",
}
__all__ = [  # the keys of _EXPORTS (tests/test_startup.py)
    "Callback", "ConfigError", "DataBundle", "DataError", "DivekitError", "Result", "StopTraining", "TensorLoader",
    "TrainConfig", "Trainer", "TrainingDiverged", "best_device", "create_model", "fit", "init", "io", "list_datasets",
    "list_models", "load", "load_dataset", "load_params", "load_run", "num_gpus", "save", "save_params", "to_device",
    "train",
]

# `divekit.train` is both a subpackage and the function dk.train. Loading a subpackage sets it as an
# attribute of its parent, so load the (light) subpackage now and drop that attribute: `dk.train` then
# goes through __getattr__ to the function, and later imports of divekit.train.* cannot hide it.
from . import train as _train_package  # noqa: E402, F401

del train  # noqa: F821  (bound by the import machinery above)

if _typing.TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from .core import io
    from .core.device import best_device, num_gpus, to_device
    from .core.errors import ConfigError, DataError, DivekitError, TrainingDiverged
    from .core.io import load, load_params, save, save_params
    from .data import DataBundle, TensorLoader, list_datasets, load_dataset
    from .models import create_model, list_models
    from .ops import init
    from .train.api import Result, fit, load_run, train
    from .train.callbacks import Callback, StopTraining
    from .train.config import TrainConfig
    from .train.trainer import Trainer


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'divekit' has no attribute {name!r}")
    module = _importlib.import_module(_EXPORTS[name], __name__)
    value = module if module.__name__.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
