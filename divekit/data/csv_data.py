"""A user's own table: `--data csv:PATH --target COLUMN [--features A,B,C]`.

    divekit train mlp --data csv:train.csv --target Survived
    divekit predict runs/mlp-csv-train-... test.csv --out submission.csv

The file is read with pandas and checked (a clear error for an empty file, rows with more or
fewer fields than the header, a missing target or feature column). The features are prepared as
in the book's house-price workflow (`TabularPreprocessor`): numeric columns standardized with the
*training rows'* mean and std (missing -> the mean), other columns one-hot encoded with a column for
"missing". The fitted preprocessor is saved in the run's checkpoint (its `context`), so
`divekit predict` prepares a new CSV exactly like the training data.

Options (`--data-arg KEY=VALUE`; `--target` and `--features` are flags of their own):

* `task`: `regression`, `classification` (softmax over the classes) or `binary` (one logit,
  sigmoid cross-entropy). Default, from the target column: strings or booleans -> classes; numbers
  -> regression, except integers with at most 10 distinct values (0/1, ratings 1-5), which are
  class labels. Classes: two -> `binary`, more -> `classification`.
* `id`: the column naming the rows, never a feature, copied into predictions. Default: the
  first of `id`, `Id`, `ID`, `PassengerId` present; `id=none` for no id column.
* `valid`: the fraction of rows held out for validation (default 0.2; 0 trains on every row),
  a random split seeded by `split_seed` (default 0, so runs with different `--seed` share it).
* `folds` and `fold`: K-fold cross-validation instead; fold `fold` (0 .. folds-1) of a seeded
  permutation is the validation split (`divekit.ops.kfold.k_fold_indices`). Run every fold, or use
  `k_fold_csv` from Python, which does that and tabulates the folds.
* `scale_target` (regression, default true): the model learns the standardized target
  (y - mean) / std; `valid_loss` is then the MSE in units of the target's variance (1.0 is
  as good as always predicting the mean) and predictions are turned back into the target's units.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..core.errors import ConfigError, DataError, did_you_mean
from ..ops.kfold import k_fold_indices
from . import hub
from .loader import split
from .registry import DataBundle, register_dataset, register_source, tensor_bundle
from .tabular import TabularPreprocessor

if TYPE_CHECKING:  # annotations only; pandas is imported where it is used
    import pandas as pd

PREFIX = "csv:"
ID_COLUMNS = ("id", "Id", "ID", "PassengerId")
MAX_INTEGER_CLASSES = 10  # an integer target with at most this many distinct values holds class labels
TASKS = {"regression": "regression", "classification": "classification", "binary": "binary-classification",
         "binary-classification": "binary-classification"}
# training defaults for any CSV (below the model's defaults): small tables need many small steps
CSV_DEFAULTS = {"batch_size": 32, "epochs": 20}


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file with a header line into a DataFrame; DataError naming the problem and the fix
    for a missing or empty file, a header without rows, or rows whose field count differs from the header's."""
    import pandas as pd  # deferred: pandas costs ~250 ms at start-up
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist" + (" (it is a folder)" if path.is_dir() else "")
                        + "; give the path of a .csv file, e.g. --data csv:data/train.csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = next((r for r in rows if r), None)
            if header is None:
                raise DataError(f"CSV file {path} is empty; it needs a header line naming the columns, then one line "
                                "per example")
            count = 0
            for row in rows:
                if not row:  # blank lines are skipped, as pandas does
                    continue
                count += 1
                if len(row) != len(header):
                    raise DataError(
                        f"CSV file {path}, line {rows.line_num}: {len(row)} fields, but the header has {len(header)} "
                        f"({', '.join(header[:8])}{' ...' if len(header) > 8 else ''}); every row needs one value per "
                        "column: leave a missing value empty (a,,c) and quote values that contain commas")
    except UnicodeDecodeError as e:
        raise DataError(f"CSV file {path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"CSV file {path} cannot be parsed: {e}") from None
    if count == 0:
        raise DataError(f"CSV file {path} has a header ({', '.join(header[:8])}) but no rows of data")
    try:
        return pd.read_csv(path, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError) as e:
        raise DataError(f"CSV file {path} cannot be parsed: {str(e).strip()}") from None


def choose_task(y: pd.Series, task: str | None = None) -> str:
    """The trainer task for target column `y`: `task` if given, else from its values (module doc)."""
    import pandas as pd  # deferred: pandas costs ~250 ms at start-up
    if task is not None:
        if task not in TASKS:
            raise ConfigError(f"--data-arg task must be regression, classification or binary, got {task!r}")
        return TASKS[task]
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if numeric:
        values = y.dropna()
        few_integers = bool((values == values.round()).all()) and values.nunique() <= MAX_INTEGER_CLASSES
        if not few_integers:
            return "regression"
    return "binary-classification" if y.nunique(dropna=True) == 2 else "classification"


def _columns(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [n.strip() for n in names if n.strip()]


def _check_column(frame: pd.DataFrame, name: str, flag: str, path) -> None:
    if name not in frame.columns:
        raise DataError(f"{flag} {name!r} is not a column of {path}.{did_you_mean(name, frame.columns)} "
                        f"Columns: {', '.join(map(str, frame.columns[:30]))}{' ...' if frame.shape[1] > 30 else ''}")


def _id_column(frame: pd.DataFrame, id: str | None, path) -> str | None:
    if id is None:
        return next((c for c in ID_COLUMNS if c in frame.columns), None)
    if str(id).lower() in ("none", ""):
        return None
    _check_column(frame, str(id), "--data-arg id", path)
    return str(id)


def _split(n: int, valid: float, folds: int | None, fold: int | None, seed: int):
    """(train indices, valid indices or None)."""
    if folds is not None or fold is not None:
        if folds is None or fold is None:
            raise ConfigError("K-fold needs both --data-arg folds=K and --data-arg fold=I (0 <= I < K)")
        if not 0 <= int(fold) < int(folds):
            raise ConfigError(f"--data-arg fold must be in 0 .. {int(folds) - 1} for {folds} folds, got {fold}")
        return k_fold_indices(n, int(folds), seed)[int(fold)]
    if not 0 <= valid < 1:
        raise ConfigError(f"--data-arg valid is the fraction of rows held out, in [0, 1), got {valid}")
    if valid == 0:
        return torch.arange(n), None
    train, held = split(n, [1 - valid, valid], seed=seed)
    if len(held) == 0 or len(train) == 0:
        raise DataError(f"{n} rows cannot be split into training and validation rows with valid={valid}; "
                        "add rows or use --data-arg valid=0")
    return train.sort().values, held.sort().values


@register_source("csv", defaults=CSV_DEFAULTS, tags=("tabular",), example="train.csv")
def load_csv(path: str, *, batch_size: int, seed: int = 0, device=None, target: str | None = None,
             features: str | Sequence[str] | None = None, id: str | None = None, task: str | None = None,
             valid: float = 0.2, split_seed: int = 0, folds: int | None = None, fold: int | None = None,
             scale_target: bool = True) -> DataBundle:
    """A DataBundle from a CSV file: `target` is the column to predict (see the module doc for the rest)."""
    import pandas as pd  # deferred: pandas costs ~250 ms at start-up
    frame = read_csv(path)
    if target is None:
        raise DataError(f"say which column of {path} to predict: --target COLUMN (columns: "
                        f"{', '.join(map(str, frame.columns[:30]))})")
    _check_column(frame, target, "--target", path)
    chosen = _columns(features)
    for name in chosen or ():
        _check_column(frame, name, "--features:", path)
    id_column = _id_column(frame, id, path)
    y_all = frame[target]
    if y_all.isna().any():
        lines = (frame.index[y_all.isna()] + 2).tolist()  # + the header line, 1-based
        raise DataError(f"--target {target!r} is empty in {len(lines)} row(s) of {path} (line {lines[0]}"
                        f"{', ...' if len(lines) > 1 else ''}); drop those rows or fill in their values")
    task_name = choose_task(y_all, task)
    numeric = pd.api.types.is_numeric_dtype(y_all) and not pd.api.types.is_bool_dtype(y_all)
    if task_name == "regression" and not numeric:
        example = y_all.dropna().iloc[0] if y_all.notna().any() else None
        raise DataError(f"--target {target!r} holds non-numeric values (e.g. {example!r}), so it cannot be a "
                        "regression target; convert it to numbers, or use --data-arg task=classification")
    classes = None
    if task_name != "regression":  # every label of the file is a class, even one only validation rows have
        classes = sorted(y_all.dropna().astype(object).map(str).unique().tolist())
        if len(classes) < 2:
            raise DataError(f"--target {target!r} has only one value ({classes}): nothing to classify")
        if task_name == "binary-classification" and len(classes) != 2:
            raise DataError(f"--data-arg task=binary needs a target with two values; {target!r} has "
                            f"{len(classes)}: {classes[:10]}")

    train_idx, valid_idx = _split(len(frame), float(valid), folds, fold, split_seed)
    prep = TabularPreprocessor(target, features=chosen, id_column=id_column,
                               task="regression" if task_name == "regression" else "classification")
    prep.fit(frame.iloc[train_idx.numpy()])  # means, stds and categories of the training rows only
    if classes is not None:
        prep.classes = classes

    X, y = prep.transform(frame), prep.transform_target(frame)  # (N, F), (N,)
    context: dict[str, Any] = {"in_shape": (X.shape[1],), "preprocessor": prep.state_dict(), "target_scale": None}
    if task_name == "regression":
        mean, std = (float(y[train_idx].mean()), float(y[train_idx].std())) if scale_target else (0.0, 1.0)
        std = std if math.isfinite(std) and std > 0 else 1.0
        y = (y - mean) / std
        context["target_scale"] = [mean, std]
    held = (X[valid_idx], y[valid_idx]) if valid_idx is not None else (None, None)
    return tensor_bundle(f"csv:{Path(path).name}", task_name, X[train_idx], y[train_idx], *held,
                         batch_size=batch_size, seed=seed, device=device,
                         classes=None if task_name == "regression" else prep.classes, context=context)


@register_dataset("kaggle-house", defaults={"batch_size": 64, "epochs": 50, "lr": 0.01, "optimizer": "adam"},
                  tags=("tabular", "regression"))
def kaggle_house(*, batch_size, seed, device, data_dir=None, valid=0.2, split_seed=0, folds=None, fold=None):
    """Kaggle's house prices (book 5.7): 79 features -> SalePrice, the book's preprocessing, 20% validation."""
    train_csv, _ = hub.fetch("kaggle-house", data_dir)
    bundle = load_csv(str(train_csv), batch_size=batch_size, seed=seed, device=device, target="SalePrice", id="Id",
                      task="regression", valid=valid, split_seed=split_seed, folds=folds, fold=fold)
    bundle.name = "kaggle-house"
    return bundle
