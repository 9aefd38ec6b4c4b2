"""Underfitting, overfitting and weight decay, as the book demonstrates them (book 3.6-3.7).

Two experiments, both trained with divekit's trainer:

* polynomial regression: y = 5 + 1.2x - 3.4x^2/2! + 5.6x^3/3! + noise, fitted with the first
  4 (right), 2 (underfitting) and 20 (overfitting) scaled monomial features;
* high-dimensional linear regression (200 inputs, 20 training examples) with and without an
  L2 penalty: weight decay from scratch (penalty added to the loss) and through the optimizer.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..data.registry import tensor_bundle
from ..models.linear import squared_loss
from ..train.api import fit
from ..train.config import TrainConfig

TRUE_POLY_W = (5.0, 1.2, -3.4, 5.6)
DATA_STREAM = 1_000_003  # data draws from its own random stream, never the one that initializes models


def _data_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(DATA_STREAM + seed)


def polynomial_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """(N,) -> (N, degree): x^i / i! for i = 0..degree-1 (the factorial keeps large powers in range)."""
    powers = torch.arange(degree, dtype=x.dtype)
    return x.unsqueeze(1) ** powers / torch.exp(torch.lgamma(powers + 1))


def polynomial_data(n_train: int = 100, n_test: int = 100, max_degree: int = 20, noise: float = 0.1, seed: int = 0):
    """Features (N, max_degree) and labels (N, 1) of the book's cubic, split into train and test."""
    g = _data_generator(seed)
    x = torch.randn(n_train + n_test, generator=g)
    features = polynomial_features(x, max_degree)
    w = torch.zeros(max_degree)
    w[: len(TRUE_POLY_W)] = torch.tensor(TRUE_POLY_W)
    y = (features @ w + noise * torch.randn(len(x), generator=g)).unsqueeze(1)
    return features[:n_train], y[:n_train], features[n_train:], y[n_train:]


def fit_polynomial(num_features: int, epochs: int = 400, lr: float = 0.01, seed: int = 0) -> dict:
    """Fit a linear model on the first `num_features` polynomial features; returns losses and weights."""
    x_tr, y_tr, x_te, y_te = polynomial_data(seed=seed)
    data = tensor_bundle("polynomial", "regression", x_tr[:, :num_features], y_tr, x_te[:, :num_features], y_te,
                         batch_size=min(10, len(x_tr)), seed=seed, heldout="test")
    torch.manual_seed(seed)
    model = nn.Linear(num_features, 1, bias=False)  # x^0 = 1 already plays the bias
    cfg = TrainConfig(model="polynomial", data="polynomial", epochs=epochs, lr=lr, batch_size=10, seed=seed,
                      device="cpu", log_every=10_000, plot=False)  # the experiment draws its own figure
    result = fit(model, data, cfg, run_dir=False, progress=False)
    return {"num_features": num_features, "history": result.history, "train_loss": result.metrics["train_loss"],
            "test_loss": result.metrics["test_loss"], "weights": model.weight.detach().reshape(-1).tolist()}


def high_dim_data(n_train: int = 20, n_test: int = 100, num_inputs: int = 200, seed: int = 0):
    """y = 0.05 + sum_i 0.01 x_i + noise(0.01): few examples, many inputs, easy to overfit."""
    g = _data_generator(seed)
    x = torch.randn(n_train + n_test, num_inputs, generator=g)
    y = 0.05 + x.sum(1, keepdim=True) * 0.01 + 0.01 * torch.randn(len(x), 1, generator=g)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def l2_penalty(w: torch.Tensor) -> torch.Tensor:
    """||w||^2 / 2."""
    return (w**2).sum() / 2


class WeightDecayScratch(nn.Module):
    """Linear regression whose training loss adds lambda * ||w||^2 / 2 by hand (the bias is not
    penalized). In eval mode the loss is the data loss alone, so evaluation compares with the
    concise version."""

    def __init__(self, num_inputs: int, lambd: float):
        super().__init__()
        self.w = nn.Parameter(torch.randn(num_inputs, 1))
        self.b = nn.Parameter(torch.zeros(1))
        self.lambd = lambd

    def forward(self, X):
        return X @ self.w + self.b

    def loss(self, y_hat, y):
        data_loss = squared_loss(y_hat, y)
        return data_loss + self.lambd * l2_penalty(self.w) if self.training else data_loss


def train_weight_decay(lambd: float, scratch: bool = True, epochs: int = 100, lr: float = 0.003, seed: int = 0) -> dict:
    """Train the high-dimensional regression with weight decay `lambd`; returns losses and ||w||.

    scratch=True adds the penalty to the loss; scratch=False lets torch.optim.SGD decay the weight
    (weight_decay=lambd on the weight's parameter group only, as the book does).
    """
    x_tr, y_tr, x_te, y_te = high_dim_data(seed=seed)
    data = tensor_bundle("high-dim-linear", "regression", x_tr, y_tr, x_te, y_te, batch_size=5, seed=seed,
                         heldout="test")
    torch.manual_seed(seed)
    cfg = TrainConfig(model="weight-decay", data="high-dim-linear", epochs=epochs, lr=lr, batch_size=5, seed=seed,
                      device="cpu", log_every=10_000, plot=False)  # the experiment draws its own figure
    if scratch:
        model, optimizer = WeightDecayScratch(x_tr.shape[1], lambd), None
        weight = model.w
    else:
        model = nn.Linear(x_tr.shape[1], 1)
        nn.init.normal_(model.weight)
        nn.init.zeros_(model.bias)
        model.loss = squared_loss  # the same data loss as the scratch version
        optimizer = torch.optim.SGD([{"params": model.weight, "weight_decay": lambd}, {"params": model.bias}], lr=lr)
        weight = model.weight
    result = fit(model, data, cfg, run_dir=False, progress=False, optimizer=optimizer)
    model.eval()
    with torch.no_grad():  # final data losses without the penalty, as the book evaluates them
        train_loss, test_loss = (float(squared_loss(model(x), y)) for x, y in ((x_tr, y_tr), (x_te, y_te)))
    return {"lambda": lambd, "scratch": scratch, "history": result.history, "w_norm": float(weight.detach().norm()),
            "train_loss": train_loss, "test_loss": test_loss}


def plot_losses(runs: list[dict], label_key: str, path, title: str, log: bool = True):
    """Train and test loss per epoch for each run, one panel per run."""
    import matplotlib.pyplot as plt

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.2), squeeze=False)
    for ax, r in zip(axes[0], runs):
        epochs = [h["epoch"] for h in r["history"]]
        for split in ("train_loss", "test_loss"):
            ax.plot(epochs, [h[split] for h in r["history"]], label=split)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{label_key} = {r[label_key]}")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def polynomial_experiment(out_dir, epochs: int = 400, overfit_epochs: int = 1500, seed: int = 0) -> dict:
    """The book's three fits: 4 features (normal), 2 (underfitting) and 20 (overfitting, trained
    longer as in the book); writes polynomial.png, returns the figures."""
    runs = [fit_polynomial(k, epochs=e, seed=seed) for k, e in ((4, epochs), (2, epochs), (20, overfit_epochs))]
    plot = plot_losses(runs, "num_features", f"{out_dir}/polynomial.png", "normal fit, underfitting, overfitting")
    summary = {f"features_{r['num_features']}": {k: r[k] for k in ("train_loss", "test_loss")} for r in runs}
    summary["features_4"]["weights"] = [round(w, 4) for w in runs[0]["weights"]]
    return {"runs": summary, "plot": str(plot)}


def weight_decay_experiment(out_dir, lambdas=(0.0, 3.0), epochs: int = 100, seed: int = 0) -> dict:
    """lambda = 0 (overfits) vs 3, from scratch and concise; writes weight_decay.png."""
    runs = [train_weight_decay(lam, scratch, epochs=epochs, seed=seed) for scratch in (True, False) for lam in lambdas]
    plot = plot_losses(runs[: len(lambdas)], "lambda", f"{out_dir}/weight_decay.png",
                       "weight decay from scratch (the training curve is the objective, L2 penalty included)")
    summary = {
        f"{'scratch' if r['scratch'] else 'concise'}_lambda_{r['lambda']:g}": {
            k: round(r[k], 6) for k in ("w_norm", "train_loss", "test_loss")
        }
        for r in runs
    }
    return {"runs": summary, "plot": str(plot)}
