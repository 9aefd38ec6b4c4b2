"""The book's synthetic regression data (section 3.3)."""

from __future__ import annotations

import torch


def synthetic_linear(
    w=(2.0, -3.4), b: float = 4.2, noise: float = 0.01, num_train: int = 1000, num_test: int = 1000, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """y = Xw + b + noise with X ~ N(0, 1): returns (x_train, y_train, x_test, y_test, w, b).

    y has shape (N, 1), as in the book. The data has its own random stream (offset from `seed`), so
    it is not correlated with a model initialized after `torch.manual_seed(seed)`.
    """
    g = torch.Generator().manual_seed(1_000_003 + seed)
    w_t = torch.tensor(w, dtype=torch.float32)
    n = num_train + num_test
    x = torch.randn(n, len(w_t), generator=g)
    y = (x @ w_t + b + noise * torch.randn(n, generator=g)).unsqueeze(1)
    return x[:num_train], y[:num_train], x[num_train:], y[num_train:], w_t, b
