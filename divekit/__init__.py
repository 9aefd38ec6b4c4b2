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
import typing as _typing

# before torch loads: the OpenMP wait policy and the free cores (see divekit.core.host)
from .core import host as _host  # noqa: E402

_host.look_before_torch()
WAIT_POLICY = _host.WAIT_POLICY  # the OpenMP wait policy this process runs with (None: torch's default)

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
