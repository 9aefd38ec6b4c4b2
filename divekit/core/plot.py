"""Plots of training curves and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless: matplotlib picks Agg; in Jupyter: the inline backend
import numpy as np


def curves_figure(history: list[dict[str, float]], title: str = ""):
    """Loss (and accuracy or perplexity, if present) per epoch for every split, as the book plots them."""
    epochs = [h["epoch"] for h in history]
    keys = sorted({k for h in history for k in h})
    panels = [(label, [k for k in keys if k.endswith(suffix)])
              for label, suffix in (("loss", "_loss"), ("accuracy", "_acc"), ("perplexity", "_ppl"))]
    panels = [p for p in panels if p[1] or p[0] == "loss"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (label, names) in zip(axes[0], panels):
        for name in names:
            ax.plot(epochs, [h.get(name, float("nan")) for h in history], marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_figure(matrix, classes: list[str]):
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    matrix = np.asarray(matrix)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * k, 1 + 0.6 * k))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(int(matrix.max()), 1)
    for i in range(k):
        for j in range(k):
            v = int(matrix[i][j])
            ax.text(j, i, v, ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
