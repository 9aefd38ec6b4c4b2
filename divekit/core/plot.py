"""Plots of training curves, confusion matrices, attention weights and generated samples
(matplotlib, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt  # headless: matplotlib picks Agg; in Jupyter: the inline backend
import numpy as np


def curves_figure(history: list[dict[str, float]], title: str = ""):
    """Loss (and accuracy or perplexity, if present) per epoch for every split, as the book plots them."""
    epochs = [h["epoch"] for h in history]
    keys = sorted({k for h in history for k in h})
    panels = [(label, [k for k in keys if k.endswith(suffix)])  # a GAN's two losses: train_loss_d, train_loss_g
              for label, suffix in (("loss", ("_loss", "_loss_d", "_loss_g")), ("accuracy", "_acc"),
                                    ("perplexity", "_ppl"))]
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


def attention_heatmap(weights, path: str | Path, xlabel: str = "keys", ylabel: str = "queries",
                      titles: Sequence[str] | None = None, cmap: str = "Reds") -> Path:
    """Attention weights as heatmaps (the book's show_heatmaps), saved to `path`: weights (a tensor
    or array) (Q, K) for one map or (rows, cols, Q, K) for a grid; one shared colour bar; `titles`
    name the columns."""
    from matplotlib.figure import Figure  # not through pyplot: no figure manager to close

    if hasattr(weights, "detach"):  # a torch tensor, possibly on a GPU, requiring grad or in bfloat16
        weights = weights.detach().float().cpu().numpy()
    weights = np.asarray(weights)
    if weights.ndim == 2:
        weights = weights[None, None]  # (1, 1, Q, K)
    if weights.ndim != 4:
        raise ValueError(f"attention_heatmap: weights of shape {tuple(weights.shape)}; "
                         f"pass (Q, K) or (rows, cols, Q, K)")
    rows, cols = weights.shape[:2]
    fig = Figure(figsize=(2.5 * cols + 1, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            # one colour scale for every map, so the shared colour bar is true for all of them
            image = axes[i, j].imshow(weights[i, j], cmap=cmap, aspect="auto",
                                      vmin=float(weights.min()), vmax=float(weights.max()))
            if i == rows - 1:
                axes[i, j].set_xlabel(xlabel)
            if j == 0:
                axes[i, j].set_ylabel(ylabel)
            if titles:
                axes[i, j].set_title(titles[j])
    fig.colorbar(image, ax=axes, shrink=0.6)
    return save_figure(fig, path)


def image_grid(images, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Images (N, C, H, W) with values in [0, 1] tiled `nrow` to a row (default: a square, ceil(sqrt N))
    with `pad` white pixels between them, as uint8 (rows, cols) for one channel or (rows, cols, 3) for RGB."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    n, c, h, w = images.shape
    ncol = min(nrow or math.ceil(math.sqrt(n)), n)
    rows = -(-n // ncol)
    grid = np.ones((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = img
    grid = np.rint(grid * 255).astype(np.uint8)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)  # (rows, cols) or (rows, cols, C)


def save_image_grid(images, path: str | Path, nrow: int | None = None) -> Path:
    """Save images (N, C, H, W) in [0, 1] as one PNG grid (see image_grid)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, nrow)).save(path, optimize=True)
    return path


def points_figure(real, generated: dict[str, np.ndarray], title: str = ""):
    """2-D points: the real ones (blue) and the generated ones (orange), one panel per entry of
    `generated` (e.g. {"epoch 1": ..., "epoch 20": ...}), as the book plots its toy GAN (20.1)."""
    real = np.asarray(real)
    fig, axes = plt.subplots(1, len(generated), figsize=(3.2 * len(generated), 3.2), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (label, points) in zip(axes[0], generated.items()):
        points = np.asarray(points)
        ax.scatter(real[:, 0], real[:, 1], s=4, alpha=0.4, label="real")
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.4, label="generated")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
