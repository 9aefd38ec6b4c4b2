"""Binary classification sets: the hours-to-pass toy example and scikit-learn's breast cancer table.

Both need no download. Their targets are class indices 0/1 and their task is
"binary-classification" (one logit per example, see divekit.tasks.binary).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..core.errors import DataError
from .loader import split
from .registry import DataBundle, register_dataset, tensor_bundle

# 20 students: hours studied and whether they passed the exam (Wikipedia, "Logistic regression").
# The maximum-likelihood fit is P(pass) = sigmoid(1.5046 * hours - 4.0777).
HOURS = (0.50, 0.75, 1.00, 1.25, 1.50, 1.75, 1.75, 2.00, 2.25, 2.50,
         2.75, 3.00, 3.25, 3.50, 4.00, 4.25, 4.50, 4.75, 5.00, 5.50)
PASSED = (0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1)
HOURS_MLE = (1.5046, -4.0777)  # (slope, intercept), the known maximum-likelihood estimate


def binary_bundle(name: str, X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor | None = None,
                  y_test: torch.Tensor | None = None, *, classes, batch_size: int, seed: int = 0, device=None,
                  heldout: str = "test", context: dict | None = None) -> DataBundle:
    """A binary-classification bundle over features X (N, F) and 0/1 targets y (N,)."""
    if len(classes) != 2:
        raise DataError(f"binary classification needs exactly two classes, got {list(classes)}")
    return tensor_bundle(name, "binary-classification", X_train, y_train, X_test, y_test, batch_size=batch_size,
                         seed=seed, device=device, classes=classes, heldout=heldout, context=context)


@register_dataset("hours-to-pass", defaults={"batch_size": 20, "epochs": 500, "lr": 1.0}, tags=("binary", "embedded"))
def hours_to_pass(*, batch_size, seed, device):
    """Hours studied -> passed the exam, 20 students (Wikipedia's logistic regression example); training only."""
    X = torch.tensor(HOURS, dtype=torch.float32).reshape(-1, 1)  # (20, 1), raw hours: w and b stay interpretable
    y = torch.tensor(PASSED, dtype=torch.int64)
    return binary_bundle("hours-to-pass", X, y, classes=["fail", "pass"], batch_size=batch_size, seed=seed,
                         device=device)


def _sklearn_file(name: str) -> Path:
    """A data file bundled with scikit-learn, found without importing it (its imports take seconds)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the embedded {name} comes with scikit-learn: `pip install scikit-learn`")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(f"scikit-learn is installed but has no {path}: reinstall scikit-learn")
    return path


@lru_cache(maxsize=1)
def load_breast_cancer_tensors(test_fraction: float = 0.2) -> tuple[torch.Tensor, ...]:
    """Wisconsin breast cancer (569 rows, 30 features), standardized with the training rows' mean
    and std, with a fixed 80/20 split: (X_train, y_train, X_test, y_test, classes)."""
    path = _sklearn_file("breast_cancer.csv")
    with open(path) as f:
        classes = f.readline().strip().split(",")[2:]  # header: n_samples, n_features, class names
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)  # (569, 31)
    X, y = torch.from_numpy(table[:, :-1]), torch.from_numpy(table[:, -1].astype(np.int64))
    train, test = split(len(X), [1 - test_fraction, test_fraction], seed=0)
    mean, std = X[train].mean(0), X[train].std(0)
    X = (X - mean) / std
    return X[train], y[train], X[test], y[test], classes


@register_dataset("breast-cancer", defaults={"batch_size": 32, "epochs": 30}, tags=("binary", "embedded", "tabular"))
def breast_cancer(*, batch_size, seed, device):
    """scikit-learn's Wisconsin breast cancer table: 30 features, malignant / benign, 455 + 114 rows, bundled."""
    X_tr, y_tr, X_te, y_te, classes = load_breast_cancer_tensors()
    return binary_bundle("breast-cancer", X_tr, y_tr, X_te, y_te, classes=classes, batch_size=batch_size, seed=seed,
                         device=device)
