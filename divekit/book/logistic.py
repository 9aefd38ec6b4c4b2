"""The hours-to-pass experiment: logistic regression fitted by gradient descent, compared with the
known maximum-likelihood fit, and its probability plot (`divekit demo logistic`).

Twenty students report the hours they studied and whether they passed. Logistic regression
models P(pass | hours) = sigmoid(w * hours + b); full-batch gradient descent on the binary
cross-entropy reaches the maximum-likelihood estimate w = 1.5046, b = -4.0777 (Wikipedia,
"Logistic regression"). The plot shows the fitted sigmoid, the students as points at 0 and 1, and
the 0.5 line: the model predicts "pass" to the right of hours = -b / w, where the curve crosses it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.binary import HOURS, HOURS_MLE, PASSED
from ..data.registry import load_dataset
from ..models.logistic import sigmoid
from ..models.registry import create_model
from ..train.api import fit, resolve_config
from ..train.config import TrainConfig


def fit_hours_to_pass(model: str = "logistic-regression-scratch",
                      seed: int = 0) -> tuple[float, float, torch.nn.Module]:
    """Train `model` on the 20 students with its default settings (full-batch gradient descent,
    lr 1, 500 epochs); returns (slope w, intercept b, the model)."""
    cfg: TrainConfig = resolve_config(model=model, seed=seed, device="cpu")
    data = load_dataset("hours-to-pass", batch_size=cfg.batch_size, seed=seed)
    torch.manual_seed(seed)
    net = create_model(model, context=data.context)
    fit(net, data, cfg, run_dir=False, progress=False)
    w, b = net.weights()
    return float(w[0]), float(b), net


def probability_plot(w: float, b: float, path: str | Path, title: str = "") -> Path:
    """P(pass | hours) = sigmoid(w * hours + b) over the data, the students at 0 / 1, the 0.5 line."""
    import matplotlib.pyplot as plt

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    hours = torch.linspace(0, 6, 200)
    fig, ax = plt.subplots(figsize=(9, 4))
    sign = "-" if b < 0 else "+"
    ax.plot(hours, sigmoid(w * hours + b), label=f"P(pass) = sigmoid({w:.2f} hours {sign} {abs(b):.2f})")
    ax.scatter(HOURS, PASSED, color="C1", zorder=3, label="students (1 = passed)")
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="0.5: predict pass above")
    ax.axvline(-b / w, color="gray", linestyle=":", linewidth=1, label=f"boundary: {-b / w:.2f} hours")
    ax.set_xlabel("hours studied")
    ax.set_ylabel("probability of passing")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside: no point hidden
    ax.set_title(title or "logistic regression on hours studied")
    fig.tight_layout()
    return save_figure(fig, path)


def hours_to_pass_demo(out: Path) -> dict:
    """Fit from scratch and with nn.Linear + BCEWithLogitsLoss; compare with the MLE; plot."""
    fits = {}
    for name in ("logistic-regression-scratch", "logistic-regression"):
        w, b, _ = fit_hours_to_pass(name)
        fits[name] = {"slope": round(w, 4), "intercept": round(b, 4)}
    w, b = fits["logistic-regression-scratch"]["slope"], fits["logistic-regression-scratch"]["intercept"]
    p = sigmoid(torch.tensor([w * 2 + b, w * 4 + b]))
    return {
        "fits": fits,
        "mle": {"slope": HOURS_MLE[0], "intercept": HOURS_MLE[1]},
        "boundary_hours": round(-b / w, 3),
        "p_pass_2h": round(float(p[0]), 3),
        "p_pass_4h": round(float(p[1]), 3),
        "plot": str(probability_plot(w, b, out / "logistic.png", "hours studied -> passed (20 students)")),
    }
