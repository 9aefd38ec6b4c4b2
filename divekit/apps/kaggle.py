"""Predicting house prices on Kaggle (book 5.7): preprocessing, k-fold model selection, a submission.

    from divekit.apps.kaggle import run_kaggle_house
    result = run_kaggle_house(k=5, model="linear")   # or model="mlp"
    result["valid_log_rmse"], result["submission"]

The workflow: read the competition's train.csv and test.csv (`hub.fetch("kaggle-house")`), keep
the Id column for the submission, preprocess the features with the training file's statistics
(`TabularPreprocessor`), regress y = log(SalePrice) with divekit's trainer, estimate the error by
k-fold cross-validation, then train on all training rows and write out_dir/submission.csv (Id,
SalePrice). out_dir also gets curves.png (log-RMSE per epoch of every fold and the final model),
results.json, preprocessor.json and checkpoint.safetensors, which `divekit.load_run(out_dir,
"last")` rebuilds (its meta holds the preprocessor state and the target offset).

Departures from the book, each measured by 5-fold cross-validation on the training file:

* The target is log(SalePrice), so the squared loss is the competition's error measure; the book
  fits raw prices, which is why it needs Adam with lr 5. The model learns log price minus the
  training rows' mean log price (`offset`), so the output bias starts near its answer and weight
  decay, which also shrinks the bias, does not pull predictions towards a price of 1.
* Adam with a cosine learning-rate schedule: the final weights are not a noisy Adam iterate.
* Features are standardized with the training file only (the book uses train + test).

The same command line: `divekit kaggle-house [--k 5] [--model linear|mlp] [--epochs N] ...`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.checkpoint import save_checkpoint
from ..core.device import resolve_device
from ..core.errors import ConfigError, DataError
from ..core.io import write_json_atomic
from ..core.rundir import CURVES, LAST
from ..data import hub
from ..data.registry import DataBundle, tensor_bundle
from ..data.tabular import TabularPreprocessor
from ..ops.kfold import k_fold
from ..train.api import fit, run_meta
from ..train.config import TrainConfig

TARGET, ID = "SalePrice", "Id"
MODELS = {"linear": "linear-regression", "mlp": "mlp"}  # --model -> registered model

OPTIMIZER, SCHEDULE = "adam", "cosine"

# Defaults per model, chosen by 5-fold cross-validation on the training file (seed 0)
DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"epochs": 50, "lr": 0.01, "weight_decay": 0.01, "batch_size": 64},
    "mlp": {"epochs": 50, "lr": 0.001, "weight_decay": 0.003, "batch_size": 64, "num_hiddens": 256, "dropout": 0.3},
}


def log_rmse(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """The competition's error: sqrt(mean((log(max(pred, 1)) - log(label))^2)) over prices.

    It is the root-mean-square error of log prices, so a 10% miss on a cheap house costs as much
    as on an expensive one. Predictions below 1 are clamped to 1 so their log is defined.
    """
    preds, labels = preds.detach().double().reshape(-1), labels.detach().double().reshape(-1)
    if len(preds) != len(labels):
        raise ConfigError(f"{len(preds)} predictions for {len(labels)} labels")
    clipped = torch.clamp(preds, min=1.0)
    return float(torch.sqrt(torch.mean((torch.log(clipped) - torch.log(labels)) ** 2)))


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The model's outputs for X, (N,), in eval mode (dropout off)."""
    model.eval()
    device = next(model.parameters()).device
    return model(X.to(device)).reshape(-1).cpu()


def load_house_frames(data_dir=None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The competition's training and test files as DataFrames (downloaded if they are missing)."""
    train_csv, test_csv = hub.fetch("kaggle-house", data_dir, progress=progress)
    frames = []
    for path in (train_csv, test_csv):
        try:
            frames.append(pd.read_csv(path))
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {path} ({e}); delete it to download it again") from None
    return frames[0], frames[1]


def _settings(model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if model not in MODELS:
        raise ConfigError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    settings = {**DEFAULTS[model], **{k: v for k, v in overrides.items() if v is not None}}
    extra = [k for k in ("num_hiddens", "dropout") if k in settings and k not in DEFAULTS[model]]
    if extra:
        flags = " and ".join("--" + k.replace("_", "-") for k in extra)
        raise ConfigError(f"{flags} {'applies' if len(extra) == 1 else 'apply'} only to --model mlp")
    if model == "mlp" and not 0 <= settings["dropout"] < 1:
        raise ConfigError(f"--dropout must be in [0, 1), got {settings['dropout']}")
    if model == "mlp" and settings["num_hiddens"] < 1:
        raise ConfigError(f"--num-hiddens must be at least 1, got {settings['num_hiddens']}")
    return settings


def _config(model: str, settings: dict[str, Any], seed: int, device: str) -> TrainConfig:
    model_args = {"num_hiddens": (settings["num_hiddens"],), "dropouts": settings["dropout"]} if model == "mlp" else {}
    return TrainConfig(model=MODELS[model], data="kaggle-house", epochs=settings["epochs"], lr=settings["lr"],
                       batch_size=settings["batch_size"], optimizer=OPTIMIZER, scheduler=SCHEDULE,
                       weight_decay=settings["weight_decay"], seed=seed, device=device,
                       model_args=model_args, plot=False).validate()  # one figure of every fold, drawn by the app


@dataclass
class Regressor:
    """A trained model of log prices: log price = model(X) + offset."""

    model: torch.nn.Module
    offset: float  # the mean log price of the rows it was trained on
    history: list[dict[str, float]]
    data: DataBundle = field(repr=False)  # what it was trained on (its context rebuilds the model)

    def prices(self, X: torch.Tensor) -> torch.Tensor:
        return (predict(self.model, X) + self.offset).exp()


def train_regressor(X_train: torch.Tensor, y_train: torch.Tensor, X_valid: torch.Tensor | None,
                    y_valid: torch.Tensor | None, cfg: TrainConfig) -> Regressor:
    """Fit cfg's model to log prices y_train (minus their mean) with divekit's trainer."""
    offset = float(y_train.mean())
    data = tensor_bundle("kaggle-house", "regression", X_train, y_train - offset, X_valid,
                         None if y_valid is None else y_valid - offset, batch_size=cfg.batch_size, seed=cfg.seed,
                         device=resolve_device(cfg.device))
    result = fit(cfg.model, data, cfg, run_dir=False, progress=False)
    return Regressor(result.model, offset, result.history, data)


def _curve(history: list[dict[str, float]], split: str) -> list[float]:
    """Per-epoch log-RMSE of a split: the square root of its mean squared error on log prices.

    The training curve is the trainer's running average over the epoch, with dropout on.
    """
    return [h[f"{split}_loss"] ** 0.5 for h in history]


def _plot(curves: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, c in enumerate(curves):
        color = "black" if c["label"] == "all data" else f"C{i}"
        epochs = range(1, len(c["train"]) + 1)
        ax.plot(epochs, c["train"], color=color, label=f"{c['label']} train")
        if c.get("valid"):
            ax.plot(epochs, c["valid"], color=color, linestyle="--", label=f"{c['label']} valid")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log-RMSE")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def run_kaggle_house(data_dir=None, *, k: int = 5, model: str = "linear", epochs: int | None = None,
                     lr: float | None = None, weight_decay: float | None = None, batch_size: int | None = None,
                     num_hiddens: int | None = None, dropout: float | None = None, seed: int = 0,
                     device: str = "auto", out_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """The book's Kaggle house-price workflow: k-fold log-RMSE, then a submission from all training data.

    Unset hyperparameters take the model's entry in DEFAULTS. Returns the contents of
    results.json: settings, per-fold train/valid log-RMSE, their means, the final model's
    training log-RMSE and the paths of what was written.
    """
    start = time.perf_counter()
    settings = _settings(model, dict(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                                     num_hiddens=num_hiddens, dropout=dropout))
    cfg = _config(model, settings, seed, device)
    train_frame, test_frame = load_house_frames(data_dir, progress=progress)

    prep = TabularPreprocessor(TARGET, id_column=ID, task="regression").fit(train_frame)
    X, X_test = prep.transform(train_frame), prep.transform(test_frame)  # (N, F), (N_test, F)
    prices = prep.transform_target(train_frame)
    if (prices <= 0).any():
        raise DataError(f"{TARGET} must be positive to take its log; check the training file")
    y = torch.log(prices)  # (N,)

    curves: list[dict[str, Any]] = []

    def train_fold(X_train, y_train, X_valid, y_valid) -> dict[str, float]:
        reg = train_regressor(X_train, y_train, X_valid, y_valid, cfg)
        fold = {"train_log_rmse": log_rmse(reg.prices(X_train), y_train.exp()),
                "valid_log_rmse": log_rmse(reg.prices(X_valid), y_valid.exp())}
        curves.append({"label": f"fold {len(curves) + 1}", "train": _curve(reg.history, "train"),
                       "valid": _curve(reg.history, "valid")})
        if progress:
            print(f"fold {len(curves)}/{k}: train log-rmse {fold['train_log_rmse']:.4f}, "
                  f"valid log-rmse {fold['valid_log_rmse']:.4f}", file=sys.stderr)
        return fold

    folds = k_fold(train_fold, X, y, k=k, seed=seed)
    final = train_regressor(X, y, None, None, cfg)  # the model to submit: trained on every row
    test_prices = final.prices(X_test)
    final_train_log_rmse = log_rmse(final.prices(X), prices)
    curves.append({"label": "all data", "train": _curve(final.history, "train")})

    out = Path(out_dir) if out_dir else Path("runs") / f"kaggle-house-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    submission = out / "submission.csv"
    pd.DataFrame({ID: prep.ids(test_frame), TARGET: test_prices.numpy()}).to_csv(submission, index=False)
    plot = _plot(curves, out / CURVES, f"{model} on kaggle-house, {k}-fold")
    write_json_atomic(out / "preprocessor.json", prep.state_dict())
    meta = {**run_meta(cfg, final.data, cfg.model), "preprocessor": prep.state_dict(),
            "target": f"log({TARGET}) - offset", "offset": final.offset}
    save_checkpoint(out / LAST, final.model, None, meta, save_rng=False)

    results = {
        "k": k, "model": model,
        "settings": {**settings, "seed": seed, "optimizer": cfg.optimizer, "scheduler": cfg.scheduler},
        "num_features": prep.num_features,
        "folds": folds.folds,
        "train_log_rmse": round(folds.means["train_log_rmse"], 6),
        "valid_log_rmse": round(folds.means["valid_log_rmse"], 6),
        "valid_log_rmse_std": round(folds.stds["valid_log_rmse"], 6),
        "final_train_log_rmse": round(final_train_log_rmse, 6),
        "seconds": round(time.perf_counter() - start, 2),
        "submission": str(submission), "curves": str(plot), "out_dir": str(out),
    }
    write_json_atomic(out / "results.json", results)
    return results
