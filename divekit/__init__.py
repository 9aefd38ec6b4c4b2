"""divekit: Dive into Deep Learning as a real toolkit.

    import divekit as dk
    result = dk.train(model="softmax-regression", data="fashion-mnist", epochs=10)
    dk.list_models("res*"); dk.create_model("softmax-regression", num_classes=10, in_shape=(1, 28, 28))
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

if "torch" not in _sys.modules:  # GNU OpenMP reads this once, when torch loads it
    # idle OpenMP threads sleep instead of spinning: on a machine where another process holds a core,
    # spinning threads made a 2-thread LeNet step ~3x slower (benchmarks/busy_core.py)
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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

__all__ = [
    "Callback", "ConfigError", "DataBundle", "DataError", "DivekitError", "Result", "StopTraining", "TensorLoader",
    "TrainConfig", "Trainer", "TrainingDiverged", "best_device", "create_model", "fit", "init", "io", "list_datasets",
    "list_models", "load", "load_dataset", "load_params", "load_run", "num_gpus", "save", "save_params", "to_device",
    "train",
]
