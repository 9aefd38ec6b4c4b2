"""Tabular data (book 5.7): turn a DataFrame of mixed columns into a float feature tensor.

`TabularPreprocessor` is fitted on a training frame and then transforms any frame (validation,
test, a user's new CSV) with the statistics of that training frame:

* numeric columns are standardized, x <- (x - mean) / std, and missing values become 0 after
  standardizing, i.e. they take the training mean;
* other columns (strings, booleans, categories) are one-hot encoded, one column per category seen
  in training plus one for "missing" (pandas' ``dummy_na``); a category never seen in training
  gives all zeros, so the feature columns are fixed by the training frame.

The fitted state (`state_dict()`) is plain JSON, so a saved run can preprocess new data later
with `TabularPreprocessor.from_state(state)`.

Unlike the book, which standardizes the training and test features together, only the training
frame is used for the statistics: the test set's distribution must not shape the features the
model is trained on, and a model in use sees one new example at a time anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..core.errors import DataError, did_you_mean
from . import hub
from .loader import TensorLoader
from .registry import DataBundle, register_dataset

if TYPE_CHECKING:  # annotations only; pandas is imported where it is used
    import pandas as pd

STATE_VERSION = 1
TASKS = ("regression", "classification")


def _is_numeric(column: pd.Series) -> bool:
    import pandas as pd  # deferred: pandas costs ~250 ms at start-up
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def infer_task(target: pd.Series) -> str:
    """'regression' for a numeric target, 'classification' for strings, booleans or categories.

    Integer class labels (0, 1, 2 ...) look numeric: name task="classification" for those.
    """
    return "regression" if _is_numeric(target) else "classification"


def _as_text(column: pd.Series) -> pd.Series:
    """Category values as strings (so they survive JSON), with missing values kept as NaN."""
    import pandas as pd  # deferred: pandas costs ~250 ms at start-up
    return column.astype(object).map(lambda v: np.nan if pd.isna(v) else str(v))


class TabularPreprocessor:
    """Standardize numeric columns and one-hot encode the others, with training statistics only.

    Args:
        target: the column to predict; None for a frame of features only.
        features: the input columns, in this order; default: every column except the target,
            the id column and `drop`, in the frame's order.
        id_column: a column that names the rows (e.g. "Id"): never a feature, kept for output.
        drop: further columns that are not features.
        task: "regression" or "classification"; default: inferred from the target's dtype
            (numeric -> regression). A regression target must be numeric.

    After `fit(frame)`: `transform(frame)` -> (N, F) float32 features, `transform_target(frame)`
    -> (N,) float32 values (regression) or int64 class indices (classification), `ids(frame)`,
    `feature_names` (the F output columns) and `classes` (classification only).
    """

    def __init__(self, target: str | None = None, *, features: Sequence[str] | None = None,
                 id_column: str | None = None, drop: Sequence[str] = (), task: str | None = None):
        if task is not None and task not in TASKS:
            raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.target, self.id_column, self.task = target, id_column, task
        self.chosen = list(features) if features is not None else None  # as given; None: all columns
        self.features: list[str] = []  # the input columns, fixed by fit()
        self.drop = list(drop)
        self.numeric: dict[str, tuple[float, float]] = {}  # column -> (mean, std) of the training frame
        self.categories: dict[str, list[str]] = {}  # column -> categories seen in training, sorted
        self.classes: list[str] | None = None
        self.fitted = False

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame) -> "TabularPreprocessor":
        """Learn the columns, means, standard deviations and categories of a training frame."""
        import pandas as pd  # deferred: pandas costs ~250 ms at start-up
        self._check_rows(frame, "training frame")
        if self.target is not None:
            self._require(frame, [self.target], "target column")
            self.task = self.task or infer_task(frame[self.target])
        if self.id_column is not None:
            self._require(frame, [self.id_column], "id column")
        self._require(frame, self.drop, "column to drop")
        excluded = {self.target, self.id_column, *self.drop}
        if self.chosen is None:
            self.features = [c for c in frame.columns if c not in excluded]
        else:
            self._require(frame, self.chosen, "feature column")
            self.features = list(self.chosen)
            overlap = [c for c in self.features if c in excluded]
            if overlap:
                raise DataError(f"{', '.join(map(repr, overlap))} cannot be both a feature and the target, "
                                "id or a dropped column; remove it from the features")
        if not self.features:
            raise DataError(f"the training frame has no feature columns (columns: {list(frame.columns)}); "
                            "it needs at least one column besides the target and id")
        self.numeric, self.categories = {}, {}
        for name in self.features:
            column = frame[name]
            if _is_numeric(column):
                # pandas' std (ddof=1) as in the book; a constant or single-valued column keeps std 1
                mean, std = column.mean(), column.std()
                mean = 0.0 if pd.isna(mean) else float(mean)
                std = 1.0 if pd.isna(std) or std == 0 else float(std)
                self.numeric[name] = (mean, std)
            else:
                self.categories[name] = sorted(_as_text(column).dropna().unique().tolist())
        if self.target is not None:
            self.classes = self._fit_target(frame[self.target])
        self.fitted = True
        return self

    def _fit_target(self, y: pd.Series) -> list[str] | None:
        if y.isna().any():
            rows = y.index[y.isna()].tolist()
            raise DataError(f"target column {self.target!r} is missing in {len(rows)} row(s) (first: {rows[:5]}); "
                            "drop those rows before training")
        if self.task == "regression":
            if not _is_numeric(y):
                example = y.iloc[0]
                raise DataError(f"target column {self.target!r} holds non-numeric values (e.g. {example!r}), so it "
                                "cannot be a regression target; convert it to numbers or use task='classification'")
            return None
        return sorted(_as_text(y).unique().tolist())

    # -- transforming -------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """Output columns: numeric features, then `<column>_<category>` and `<column>_nan` per category column."""
        self._check_fitted()
        names = [c for c in self.features if c in self.numeric]
        for column, cats in self.categories.items():
            names += [f"{column}_{c}" for c in cats] + [f"{column}_nan"]
        return names

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def transform(self, frame: pd.DataFrame) -> torch.Tensor:
        """Features of `frame` as an (N, F) float32 tensor in the order of `feature_names`."""
        import pandas as pd  # deferred: pandas costs ~250 ms at start-up
        self._check_fitted()
        self._check_rows(frame, "frame")
        self._require(frame, self.features, "feature column (seen in training)")
        n = len(frame)
        blocks = []
        if self.numeric:
            block = np.empty((n, len(self.numeric)), dtype=np.float64)  # (N, numeric columns)
            for j, (name, (mean, std)) in enumerate(self.numeric.items()):
                try:
                    values = pd.to_numeric(frame[name]).to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError) as e:
                    raise DataError(f"column {name!r} was numeric in the training frame but here holds "
                                    f"non-numeric values ({e}); fix or drop those rows") from None
                block[:, j] = (values - mean) / std
            blocks.append(np.nan_to_num(block, nan=0.0))  # missing -> 0 after standardizing (= the mean)
        for name, cats in self.categories.items():
            values = _as_text(frame[name])
            codes = pd.Index(cats, dtype=object).get_indexer(values)  # -1 for missing and unseen categories
            block = np.zeros((n, len(cats) + 1), dtype=np.float64)  # (N, categories + missing)
            seen = codes >= 0
            block[np.flatnonzero(seen), codes[seen]] = 1.0
            block[:, -1] = values.isna().to_numpy()
            blocks.append(block)
        return torch.from_numpy(np.concatenate(blocks, axis=1).astype(np.float32))

    def transform_target(self, frame: pd.DataFrame) -> torch.Tensor:
        """The target of `frame`: (N,) float32 (regression) or int64 class indices (classification)."""
        import pandas as pd  # deferred: pandas costs ~250 ms at start-up
        self._check_fitted()
        if self.target is None:
            raise DataError("this preprocessor was fitted without a target column")
        self._require(frame, [self.target], "target column")
        y = frame[self.target]
        if self.task == "regression":
            if not _is_numeric(y):
                raise DataError(f"target column {self.target!r} holds non-numeric values; "
                                "a regression target must be numbers")
            return torch.tensor(y.to_numpy(dtype=np.float64, na_value=np.nan), dtype=torch.float32)
        codes = pd.Index(self.classes, dtype=object).get_indexer(_as_text(y))
        if (codes < 0).any():
            unknown = sorted(set(_as_text(y)[codes < 0].astype(str)))
            raise DataError(f"target column {self.target!r} has labels not seen in training: {unknown[:5]}; "
                            f"known classes: {self.classes}")
        return torch.tensor(codes, dtype=torch.int64)

    def ids(self, frame: pd.DataFrame) -> list:
        """The id column of `frame` as a list (e.g. for a submission file)."""
        if self.id_column is None:
            raise DataError("no id_column was given to the preprocessor")
        self._require(frame, [self.id_column], "id column")
        return frame[self.id_column].tolist()

    # -- saving -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-able data (column order, means, stds, categories, classes)."""
        self._check_fitted()
        return {
            "version": STATE_VERSION,
            "target": self.target,
            "id_column": self.id_column,
            "drop": list(self.drop),
            "task": self.task,
            "features": list(self.features),
            "numeric": {c: {"mean": m, "std": s} for c, (m, s) in self.numeric.items()},
            "categories": {c: list(cats) for c, cats in self.categories.items()},
            "classes": self.classes,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TabularPreprocessor":
        """Rebuild a fitted preprocessor from `state_dict()` output."""
        if state.get("version") != STATE_VERSION:
            raise DataError(f"preprocessor state has version {state.get('version')!r}; this divekit reads "
                            f"version {STATE_VERSION}")
        p = cls(state["target"], features=state["features"], id_column=state["id_column"], drop=state["drop"],
                task=state["task"])
        p.features = list(state["features"])
        p.numeric = {c: (float(v["mean"]), float(v["std"])) for c, v in state["numeric"].items()}
        p.categories = {c: list(cats) for c, cats in state["categories"].items()}
        p.classes = state["classes"]
        p.fitted = True
        return p

    # -- checks -------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise DataError("the preprocessor is not fitted: call fit(training_frame) first")

    @staticmethod
    def _check_rows(frame: pd.DataFrame, what: str) -> None:
        import pandas as pd  # deferred: pandas costs ~250 ms at start-up
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"the {what} must be a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise DataError(f"the {what} is empty (no rows); check the CSV file")

    @staticmethod
    def _require(frame: pd.DataFrame, names: Sequence[str], what: str) -> None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            hint = did_you_mean(missing[0], frame.columns) if len(missing) == 1 else ""
            shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise DataError(f"{what} {shown} not in the frame.{hint} Columns: "
                            f"{', '.join(map(str, frame.columns[:20]))}{' ...' if frame.shape[1] > 20 else ''}")


def load_airfoil(data_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    """NASA's airfoil self-noise data (1,503 rows): 5 features and the sound level, every column
    standardized over the whole file as the book does (book 12.5)."""
    (path,) = hub.fetch("airfoil", data_dir)
    try:
        table = np.genfromtxt(path, dtype=np.float32, delimiter="\t")
    except ValueError as e:
        raise DataError(f"{path} is not the tab-separated airfoil table ({e}); delete it and download it again") from None
    if table.ndim != 2 or table.shape[1] != 6 or np.isnan(table).any():
        raise DataError(f"{path} should hold 6 numeric tab-separated columns per row, got shape {table.shape}; "
                        "delete it and download it again")
    table = (table - table.mean(axis=0)) / table.std(axis=0)
    data = torch.from_numpy(table)
    return data[:, :-1], data[:, -1:]


@register_dataset("airfoil", defaults={"batch_size": 10, "epochs": 2, "lr": 0.05}, tags=("regression",))
def airfoil(*, batch_size, seed, device, data_dir=None):
    """Airfoil self-noise, the book's optimization testbed: the first 1,500 rows, training loss only (book 12.5)."""
    x, y = load_airfoil(data_dir)
    train = TensorLoader(x[:1500], y[:1500], batch_size=batch_size, shuffle=True, device=device, seed=seed)
    return DataBundle("airfoil", "regression", train, context={"in_shape": (5,), "num_outputs": 1})
