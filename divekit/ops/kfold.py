"""K-fold cross-validation (book 3.6.3, used in 5.7): train k times, each time validating on one fold.

    result = k_fold(train_fn, X, y, k=5, seed=0)
    print(result.table()); result.means["valid_log_rmse"]

`train_fn(X_train, y_train, X_valid, y_valid)` trains a fresh model and returns a dict of
numbers (e.g. final training and validation errors); `k_fold` collects one row per fold and
the mean and standard deviation of every entry.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch

from ..core.errors import ConfigError

TrainFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


def k_fold_indices(n: int, k: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split range(n) into k folds of a seeded random permutation: [(train_idx, valid_idx)] * k.

    Every example is in exactly one validation fold; fold sizes differ by at most one. Unlike the
    book, which cuts the rows in file order, the rows are shuffled first (the same way for the
    same seed), so a file sorted by date or price does not give folds from different
    distributions. Indices are sorted within each fold.
    """
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"k-fold cross-validation needs k >= 2 folds, got {k!r}")
    if k > n:
        raise ConfigError(f"cannot split {n} examples into {k} folds; use k <= {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    folds = [f.sort().values for f in torch.tensor_split(order, k)]
    return [(torch.cat(folds[:i] + folds[i + 1:]).sort().values, folds[i]) for i in range(k)]


@dataclass
class KFoldResult:
    """Per-fold metrics (`folds`, each with its 1-based "fold" number) and their means and stds."""

    folds: list[dict[str, float]]
    means: dict[str, float]
    stds: dict[str, float]

    def table(self, digits: int = 4) -> str:
        """A plain-text table: one row per fold, then the mean (and std) row."""
        names = [k for k in self.folds[0] if k != "fold"]
        width = max(10, *(len(n) for n in names))
        lines = ["fold  " + "  ".join(f"{n:>{width}}" for n in names)]
        for row in self.folds:
            lines.append(f"{row['fold']:>4}  " + "  ".join(f"{row[n]:>{width}.{digits}f}" for n in names))
        lines.append("mean  " + "  ".join(f"{self.means[n]:>{width}.{digits}f}" for n in names))
        lines.append(" std  " + "  ".join(f"{self.stds[n]:>{width}.{digits}f}" for n in names))
        return "\n".join(lines)


def k_fold(train_fn: TrainFn, X: torch.Tensor, y: torch.Tensor, k: int = 5, seed: int = 0) -> KFoldResult:
    """Call `train_fn(X_train, y_train, X_valid, y_valid)` for each of k folds; tabulate its metrics.

    X and y share their first dimension (examples). The metric dicts of all folds must have the
    same keys, with numbers as values.
    """
    if len(X) != len(y):
        raise ConfigError(f"X has {len(X)} examples but y has {len(y)}; they must match")
    rows = []
    for i, (train_idx, valid_idx) in enumerate(k_fold_indices(len(X), k, seed)):
        metrics = train_fn(X[train_idx], y[train_idx], X[valid_idx], y[valid_idx])
        bad = {name: v for name, v in metrics.items() if not isinstance(v, numbers.Real)}
        if bad:
            raise ConfigError(f"train_fn must return a dict of numbers; fold {i + 1} returned {bad}")
        if rows and metrics.keys() != rows[0].keys() - {"fold"}:
            first = sorted(rows[0].keys() - {"fold"})
            raise ConfigError(f"fold {i + 1} returned metrics {sorted(metrics)}, but fold 1 returned {first}")
        rows.append({"fold": i + 1, **{name: float(v) for name, v in metrics.items()}})
    names = [n for n in rows[0] if n != "fold"]
    means = {n: sum(r[n] for r in rows) / k for n in names}
    stds = {n: math.sqrt(sum((r[n] - means[n]) ** 2 for r in rows) / (k - 1)) for n in names}
    return KFoldResult(rows, means, stds)
