"""Attention mechanisms (book chapter 11): masked softmax, scaled dot-product, additive and
multi-head attention, the sinusoidal positional encoding, and Nadaraya-Watson kernel regression.

Shapes follow the book: queries (B, Q, d), keys (B, K, d), values (B, K, v), where B is the batch
size, Q the number of queries and K the number of key-value pairs. `valid_lens` says how many keys
each query may look at (the rest are padding): None (all), (B,) (the same for every query of a
batch row) or (B, Q) (one per query, e.g. the causal mask of a decoder).

The plotting functions draw on matplotlib Figure objects (no pyplot state, no display needed);
matplotlib is imported only when a plot is drawn, so importing the model zoo stays light.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# The book fills masked scores with -1e6 rather than -inf: exp(-1e6 - max) is exactly 0 in
# float32, and a row whose keys are all masked becomes uniform instead of NaN.
MASK_VALUE = -1e6


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of X (B, Q, K) that gives zero weight to keys at positions
    >= the valid length: valid_lens is None (no mask), (B,) or (B, Q)."""
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    B, Q, K = X.shape
    if valid_lens.dim() == 1:
        if valid_lens.shape[0] != B:
            raise ValueError(f"masked_softmax: valid_lens of shape {tuple(valid_lens.shape)} does not match the "
                             f"batch size {B} of scores {tuple(X.shape)}; pass one length per batch row (B,)")
        valid_lens = valid_lens[:, None]  # (B, 1): the same length for every query
    elif valid_lens.shape != (B, Q):
        raise ValueError(f"masked_softmax: valid_lens of shape {tuple(valid_lens.shape)} does not fit scores "
                         f"{tuple(X.shape)}; pass (B,) = ({B},) or (B, Q) = ({B}, {Q})")
    positions = torch.arange(K, device=X.device)  # (K,)
    mask = positions[None, None, :] >= valid_lens[:, :, None]  # (B, Q or 1, K): True where masked
    return F.softmax(X.masked_fill(mask, MASK_VALUE), dim=-1)


class DotProductAttention(nn.Module):
    """Scaled dot-product attention: softmax(Q K^T / sqrt(d)) V (book 11.3.2).

    After each forward pass `attention_weights` holds the weights (B, Q, K) before dropout.
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, d), keys (B, K, d), values (B, K, v) -> (B, Q, v)."""
        d = queries.shape[-1]
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)  # (B, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, Q, v)


class AdditiveAttention(nn.Module):
    """Additive attention: a(q, k) = w_v^T tanh(W_q q + W_k k) (book 11.3.3), for queries and
    keys of different sizes.

    After each forward pass `attention_weights` holds the weights (B, Q, K) before dropout.
    """

    def __init__(self, query_size: int, key_size: int, num_hiddens: int, dropout: float = 0.0):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=False)
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, query_size), keys (B, K, key_size), values (B, K, v) -> (B, Q, v)."""
        queries, keys = self.W_q(queries), self.W_k(keys)  # (B, Q, h), (B, K, h)
        # every query plus every key by broadcasting: (B, Q, 1, h) + (B, 1, K, h) -> (B, Q, K, h)
        features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))
        scores = self.w_v(features).squeeze(-1)  # (B, Q, K, 1) -> (B, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, Q, v)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (book 11.5): num_heads scaled dot-product attentions over learned
    projections of size num_hiddens / num_heads, computed in parallel as one batched attention.

    Computes the same function as nn.MultiheadAttention(num_hiddens, num_heads, bias=bias,
    batch_first=True) with in_proj_weight = cat(W_q, W_k, W_v) and out_proj = W_o.
    """

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        if num_hiddens % num_heads:
            raise ValueError(f"MultiHeadAttention: num_hiddens={num_hiddens} is not divisible by "
                             f"num_heads={num_heads}; choose num_hiddens as a multiple of num_heads")
        self.num_hiddens, self.num_heads = num_hiddens, num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_k = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_v = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        """(B, n, num_hiddens) -> (B * num_heads, n, num_hiddens / num_heads): the heads become
        batch rows, head by head within each batch row."""
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)  # (B, n, heads, d_head)
        X = X.permute(0, 2, 1, 3)  # (B, heads, n, d_head)
        return X.reshape(-1, X.shape[2], X.shape[3])  # (B * heads, n, d_head)

    def transpose_output(self, X: torch.Tensor) -> torch.Tensor:
        """The inverse of transpose_qkv: (B * num_heads, n, d_head) -> (B, n, num_hiddens)."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (B, heads, n, d_head)
        X = X.permute(0, 2, 1, 3)  # (B, n, heads, d_head)
        return X.reshape(X.shape[0], X.shape[1], -1)  # (B, n, num_hiddens)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, num_hiddens), keys and values (B, K, num_hiddens), valid_lens None, (B,)
        or (B, Q) -> (B, Q, num_hiddens)."""
        queries = self.transpose_qkv(self.W_q(queries))  # (B * heads, Q, d_head)
        keys = self.transpose_qkv(self.W_k(keys))  # (B * heads, K, d_head)
        values = self.transpose_qkv(self.W_v(values))  # (B * heads, K, d_head)
        if valid_lens is not None:
            # each batch row's lengths for each of its heads: (B,) -> (B * heads,), (B, Q) -> (B * heads, Q)
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        output = self.attention(queries, keys, values, valid_lens)  # (B * heads, Q, d_head)
        return self.W_o(self.transpose_output(output))  # (B, Q, num_hiddens)

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """The last forward pass's weights (B * num_heads, Q, K), as the book stores them."""
        return self.attention.attention_weights

    def head_attention_weights(self) -> torch.Tensor | None:
        """The last forward pass's weights viewed as (B, num_heads, Q, K)."""
        w = self.attention_weights
        return None if w is None else w.reshape(-1, self.num_heads, w.shape[1], w.shape[2])  # (B, heads, Q, K)


class PositionalEncoding(nn.Module):
    """The sinusoidal positional encoding (book 11.6.3): X + P, with
    P[i, 2j] = sin(i / 10000^(2j/d)) and P[i, 2j+1] = cos(i / 10000^(2j/d)) for d = num_hiddens.

    `offset` in forward is the position of X's first row, so a decoder fed one token at a time
    adds the encoding of the token's real position (the book's version adds position 0 each step).
    """

    def __init__(self, num_hiddens: int, dropout: float = 0.0, max_len: int = 1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        X = torch.arange(max_len, dtype=torch.float32).reshape(-1, 1) / torch.pow(
            10000, torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)  # (max_len, ceil(d / 2))
        P = torch.zeros((1, max_len, num_hiddens))
        P[:, :, 0::2] = torch.sin(X)
        P[:, :, 1::2] = torch.cos(X[:, : num_hiddens // 2])  # an odd num_hiddens has one cosine column fewer
        # a buffer moves with .to(device); not persistent, since it is a function of the arguments
        self.register_buffer("P", P, persistent=False)

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """X (B, T, num_hiddens) -> X + P[offset : offset + T], then dropout."""
        T = X.shape[1]
        if offset + T > self.P.shape[1]:
            raise ValueError(f"PositionalEncoding: positions up to {offset + T} but max_len={self.P.shape[1]}; "
                             f"build it with a larger max_len or feed shorter sequences")
        return self.dropout(X + self.P[:, offset : offset + T, :].to(X.dtype))


def positional_encoding_plot(path: str | Path, num_hiddens: int = 32, num_steps: int = 60) -> Path:
    """Columns 6-9 of the positional encoding P over positions 0..num_steps-1, the book's figure
    of the sinusoids' frequencies falling along the encoding dimension (book 11.6.3)."""
    from matplotlib.figure import Figure

    from ..core.plot import save_figure

    P = PositionalEncoding(num_hiddens).P[0, :num_steps, :]  # (num_steps, num_hiddens)
    fig = Figure(figsize=(6, 2.5))
    ax = fig.add_subplot()
    for col in range(6, 10):
        ax.plot(torch.arange(num_steps), P[:, col], label=f"Col {col}")
    ax.set(xlabel="Row (position)", xlim=(0, num_steps - 1))
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def attention_heatmap(weights: torch.Tensor, path: str | Path, xlabel: str = "keys", ylabel: str = "queries",
                      titles: Sequence[str] | None = None, cmap: str = "Reds") -> Path:
    """Attention weights as heatmaps (the book's show_heatmaps): weights (Q, K) for one map or
    (rows, cols, Q, K) for a grid; one shared colour bar; `titles` name the columns."""
    from matplotlib.figure import Figure

    from ..core.plot import save_figure

    weights = torch.as_tensor(weights).detach().cpu()
    if weights.dim() == 2:
        weights = weights[None, None]  # (1, 1, Q, K)
    if weights.dim() != 4:
        raise ValueError(f"attention_heatmap: weights of shape {tuple(weights.shape)}; "
                         f"pass (Q, K) or (rows, cols, Q, K)")
    rows, cols = weights.shape[:2]
    fig = Figure(figsize=(2.5 * cols + 1, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            # one colour scale for every map, so the shared colour bar is true for all of them
            image = axes[i, j].imshow(weights[i, j].numpy(), cmap=cmap, aspect="auto",
                                      vmin=float(weights.min()), vmax=float(weights.max()))
            if i == rows - 1:
                axes[i, j].set_xlabel(xlabel)
            if j == 0:
                axes[i, j].set_ylabel(ylabel)
            if titles:
                axes[i, j].set_title(titles[j])
    fig.colorbar(image, ax=axes, shrink=0.6)
    return save_figure(fig, path)


# Nadaraya-Watson kernel regression (book 11.2; the learnable-w version is from the 0.17 edition's 10.2)


class KernelRegressionData(NamedTuple):
    x_train: torch.Tensor  # (n_train,) sorted inputs in [0, 5)
    y_train: torch.Tensor  # (n_train,) f(x_train) + noise
    x_test: torch.Tensor  # (n_test,) 0, 0.1, ..., 4.9
    y_truth: torch.Tensor  # (n_test,) f(x_test), noise-free


def nw_target(x: torch.Tensor) -> torch.Tensor:
    """The book's regression function f(x) = 2 sin(x) + x^0.8."""
    return 2 * torch.sin(x) + x**0.8


def kernel_regression_data(n_train: int = 50, noise: float = 0.5, seed: int = 0) -> KernelRegressionData:
    """The book's data: n_train sorted x uniform in [0, 5), y = f(x) + N(0, noise^2); test inputs
    arange(0, 5, 0.1) with the noise-free truth. Drawn from its own generator (global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    x_train, _ = torch.sort(torch.rand(n_train, generator=g) * 5)
    y_train = nw_target(x_train) + noise * torch.randn(n_train, generator=g)
    x_test = torch.arange(0, 5, 0.1)
    return KernelRegressionData(x_train, y_train, x_test, nw_target(x_test))


def average_pooling(x_train: torch.Tensor, y_train: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The baseline: every query is predicted as the mean of the training targets (n_queries,)."""
    return y_train.mean().expand(len(queries)).clone()


def nadaraya_watson(x_train: torch.Tensor, y_train: torch.Tensor, queries: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-parametric Nadaraya-Watson regression with a Gaussian kernel: the attention weights
    softmax(-(x - x_i)^2 / 2) over the training inputs (keys) and the weighted average of their
    targets (values). Returns (predictions (n_queries,), weights (n_queries, n_train))."""
    diffs = queries[:, None] - x_train[None, :]  # (n_queries, n_train)
    attention_weights = F.softmax(-(diffs**2) / 2, dim=1)
    return attention_weights @ y_train, attention_weights


class NWKernelRegression(nn.Module):
    """Parametric Nadaraya-Watson regression: the Gaussian kernel with a learnable width w,
    weights softmax(-((x - x_i) w)^2 / 2). `attention_weights` (n, m) are kept after each forward."""

    def __init__(self, w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([float(w)]))
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """queries (n,), keys and values (n, m): query i attends to the m keys of row i -> (n,)."""
        diffs = queries[:, None] - keys  # (n, 1) - (n, m) -> (n, m)
        self.attention_weights = F.softmax(-((diffs * self.w) ** 2) / 2, dim=1)  # (n, m)
        # (n, 1, m) @ (n, m, 1) -> (n, 1, 1) -> (n,)
        return torch.bmm(self.attention_weights.unsqueeze(1), values.unsqueeze(-1)).reshape(-1)


def leave_one_out(t: torch.Tensor) -> torch.Tensor:
    """(n,) -> (n, n - 1): row i holds every entry but the i-th — the keys (or values) a training
    example attends to, so it cannot simply look up its own target."""
    n = len(t)
    keep = ~torch.eye(n, dtype=torch.bool)  # (n, n), False on the diagonal
    return t.repeat(n, 1)[keep].reshape(n, n - 1)  # (n, n) -> (n, n - 1)


def train_nw_regression(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int = 5, lr: float = 0.5,
                        seed: int = 0, w_init: float | None = None) -> tuple[NWKernelRegression, list[float]]:
    """Fit w as the book does: w ~ U(0, 1) (or `w_init`), squared loss summed over the training set
    with leave-one-out keys, full-batch SGD (lr 0.5, 5 epochs). Returns the model and the loss per epoch.

    The loss depends on w only through w^2, so its gradient is proportional to w: a draw close to
    0 barely moves (the weights stay near uniform, i.e. average pooling); pass w_init=1 to start
    from the non-parametric kernel instead.
    """
    g = torch.Generator().manual_seed(seed)
    net = NWKernelRegression(float(torch.rand(1, generator=g)) if w_init is None else w_init)
    keys, values = leave_one_out(x_train), leave_one_out(y_train)  # (n, n - 1) each
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = ((net(x_train, keys, values) - y_train) ** 2 / 2).sum()  # the book's MSELoss(reduction="none"), summed
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return net, losses


def parametric_nadaraya_watson(net: NWKernelRegression, x_train: torch.Tensor, y_train: torch.Tensor,
                               queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (n_queries,) and weights (n_queries, n_train) of a trained NWKernelRegression,
    every query attending to all training examples."""
    keys, values = x_train.repeat(len(queries), 1), y_train.repeat(len(queries), 1)  # (n_queries, n_train)
    with torch.no_grad():
        y_hat = net(queries, keys, values)
    return y_hat, net.attention_weights


def _regression_plot(data: KernelRegressionData, y_hat: torch.Tensor, title: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    from ..core.plot import save_figure

    fig = Figure(figsize=(3.5, 2.5))
    ax = fig.add_subplot()
    ax.plot(data.x_test, data.y_truth, label="Truth")
    ax.plot(data.x_test, y_hat, "--", label="Pred")
    ax.plot(data.x_train, data.y_train, "o", alpha=0.5, ms=3)
    ax.set(xlabel="x", ylabel="y", xlim=(0, 5), ylim=(-1, 5), title=title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _mse(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    return round(float(((y_hat - y) ** 2).mean()), 6)


def nadaraya_watson_demo(out: str | Path, seed: int = 0) -> dict:
    """Average pooling, non-parametric and parametric Nadaraya-Watson regression on the book's
    data (book 11.2): writes their fits and attention heatmaps to `out` and returns the test MSE
    of each against the noise-free f, the learned w, the training losses and the plot paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = kernel_regression_data(seed=seed)
    baseline = average_pooling(data.x_train, data.y_train, data.x_test)
    y_np, w_np = nadaraya_watson(data.x_train, data.y_train, data.x_test)
    net, losses = train_nw_regression(data.x_train, data.y_train, seed=seed)
    y_p, w_p = parametric_nadaraya_watson(net, data.x_train, data.y_train, data.x_test)
    labels = {"xlabel": "Sorted training inputs", "ylabel": "Sorted testing inputs"}
    return {
        "test_mse_average_pooling": _mse(baseline, data.y_truth),
        "test_mse_nonparametric": _mse(y_np, data.y_truth),
        "test_mse_parametric": _mse(y_p, data.y_truth),
        "learned_w": round(float(net.w.detach()), 4),
        "parametric_train_losses": [round(v, 4) for v in losses],
        "plots": {
            "average_pooling": str(_regression_plot(data, baseline, "average pooling", out / "nw_average_pooling.png")),
            "nonparametric": str(_regression_plot(data, y_np, "non-parametric", out / "nw_nonparametric.png")),
            "parametric": str(_regression_plot(data, y_p, "parametric", out / "nw_parametric.png")),
            "nonparametric_weights": str(attention_heatmap(w_np, out / "nw_nonparametric_weights.png", **labels)),
            "parametric_weights": str(attention_heatmap(w_p, out / "nw_parametric_weights.png", **labels)),
        },
    }
