"""Your own table after training: predictions for new CSV rows (`divekit predict RUN_DIR new.csv`)
and k-fold cross-validation of a model on a CSV file from Python (`k_fold_csv`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.errors import DataError
from ..data.csv_data import PREFIX, read_csv
from ..data.tabular import TabularPreprocessor
from ..ops.kfold import KFoldResult
from ..train.api import fit, load_run, resolve_config

# -- prediction ---------------------------------------------------------------------------------


@torch.no_grad()
def predict_frame(model: torch.nn.Module, meta: dict, frame: pd.DataFrame, proba: bool = False) -> pd.DataFrame:
    """Predictions for every row of `frame` from a CSV run: the id column (if the frame has it),
    the target column (a value for regression, a class label otherwise) and, with `proba`, one
    `prob_<class>` column per class."""
    context = meta["context"]
    prep = TabularPreprocessor.from_state(context["preprocessor"])
    X = prep.transform(frame)  # (N, F), with the training rows' statistics
    device = next(model.parameters()).device
    out = model(X.to(device)).float().cpu()
    columns: dict[str, Any] = {}
    if prep.id_column is not None and prep.id_column in frame.columns:
        columns[prep.id_column] = frame[prep.id_column].to_numpy()
    task = meta["task"]
    if task == "regression":
        mean, std = context["target_scale"]
        columns[prep.target] = (out.reshape(-1) * std + mean).numpy()
        return pd.DataFrame(columns)
    classes = meta["classes"]
    if task == "binary-classification":
        p1 = torch.sigmoid(out.reshape(-1))
        probs = torch.stack([1 - p1, p1], dim=1)  # (N, 2)
    else:
        probs = torch.softmax(out, dim=1)  # (N, C)
    columns[prep.target] = _labels(classes, probs.argmax(dim=1).numpy())
    if proba:
        for j, c in enumerate(classes):
            columns[f"prob_{c}"] = probs[:, j].numpy().round(6)
    return pd.DataFrame(columns)


def _labels(classes: list[str], idx: np.ndarray) -> np.ndarray:
    """Class labels for indices; integer-looking labels are written as integers (0/1, not '0'/'1')."""
    labels = np.asarray(classes, dtype=object)[idx]
    try:
        as_int = [int(c) for c in classes]
    except ValueError:
        return labels
    return np.asarray(as_int)[idx] if [str(i) for i in as_int] == list(classes) else labels


def predict_csv(run_dir: str | Path, inputs: Sequence[str | Path], out: str | Path | None = None,
                proba: bool = False, which: str = "best") -> pd.DataFrame:
    """Predict every row of the CSV files `inputs` with the model of a CSV run; writes `out` if given."""
    model, ckpt = load_run(run_dir, which, "cpu")
    meta = ckpt.meta
    if "preprocessor" not in meta.get("context", {}):
        raise DataError(f"{run_dir} was not trained on a CSV file (its data is {meta.get('data')!r}); "
                        "CSV inputs need a run trained with --data csv:PATH")
    frames = []
    for path in inputs:
        frame = read_csv(path)
        try:
            frames.append(predict_frame(model, meta, frame, proba))
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
    result = pd.concat(frames, ignore_index=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(out, index=False)
    return result


def run_predict(args) -> int:
    """`divekit predict RUN_DIR a.csv [b.csv] [--out predictions.csv] [--proba]`."""
    result = predict_csv(args.run_dir, args.inputs, args.out, args.proba)
    if args.out is None:
        print(result.to_csv(index=False), end="")
    else:
        print(f"wrote {len(result)} predictions to {args.out}")
    if args.json:
        print(json.dumps({"out": args.out, "rows": len(result), "columns": list(result.columns)}))
    return 0


# -- K-fold from Python -------------------------------------------------------------------------


def k_fold_csv(path: str | Path, target: str, model: str = "mlp", k: int = 5, *, split_seed: int = 0,
               data_args: dict[str, Any] | None = None, **config):
    """K-fold cross-validation of `model` on a CSV file: one training run per fold (no run folders),
    each validated on its held-out fold. Returns divekit.ops.kfold.KFoldResult with the last epoch's
    train_* and valid_* metrics of every fold, their means and standard deviations.

        result = k_fold_csv("train.csv", "Survived", "mlp", k=5, epochs=30)
        print(result.table())
    """
    rows = []
    for i in range(k):
        args = {**(data_args or {}), "target": target, "folds": k, "fold": i, "split_seed": split_seed}
        cfg = resolve_config(model=model, data=f"{PREFIX}{path}", data_args=args, **{"plot": False, **config})
        result = fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
        rows.append({"fold": i + 1, **{m: v for m, v in result.metrics.items() if m.startswith(("train_", "valid_"))}})
    names = [n for n in rows[0] if n != "fold"]
    means = {n: sum(r[n] for r in rows) / k for n in names}
    stds = {n: math.sqrt(sum((r[n] - means[n]) ** 2 for r in rows) / (k - 1)) for n in names}
    return KFoldResult(rows, means, stds)
