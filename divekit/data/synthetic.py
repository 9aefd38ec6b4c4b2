"""The book's synthetic data: linear regression (section 3.3), registered as `synthetic-linear`, and
the 2-D Gaussian a GAN learns to imitate (section 20.1), registered as `gaussian-2d`."""

from __future__ import annotations

import torch

from .loader import TensorLoader
from .registry import DataBundle, register_dataset


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


@register_dataset("synthetic-linear", defaults={"batch_size": 10, "epochs": 3, "lr": 0.03}, tags=("regression",))
def synthetic_linear_data(*, batch_size, seed, device, w=(2.0, -3.4), b=4.2, noise=0.01):
    """The book's y = Xw + b + noise (w = [2, -3.4], b = 4.2), 1,000 training and 1,000 test examples."""
    x_tr, y_tr, x_te, y_te, w_t, b = synthetic_linear(w, b, noise, seed=seed)
    train = TensorLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    test = TensorLoader(x_te, y_te, batch_size=batch_size, device=device)
    context = {"in_shape": (len(w_t),), "num_outputs": 1, "true_w": w_t, "true_b": b}
    return DataBundle("synthetic-linear", "regression", train, test, context=context)


GAUSSIAN_A = ((1.0, 2.0), (-0.1, 0.5))
GAUSSIAN_B = (1.0, 2.0)


def gaussian_2d(n: int = 1000, A=GAUSSIAN_A, b=GAUSSIAN_B, seed: int = 0) -> torch.Tensor:
    """The book's toy data for the basic GAN (20.1.1): X = Z A + b with Z ~ N(0, I), (n, 2); its
    distribution is N(b, A^T A). Its own random stream, as synthetic_linear's."""
    g = torch.Generator().manual_seed(2_000_003 + seed)
    Z = torch.randn(n, 2, generator=g)
    return Z @ torch.tensor(A) + torch.tensor(b)  # (n, 2)


@register_dataset("gaussian-2d", defaults={"batch_size": 8, "epochs": 20}, tags=("generative",))
def gaussian_2d_data(*, batch_size, seed, device, num_examples: int = 1000):
    """The book's 2-D Gaussian X = Z A + b, A = [[1, 2], [-0.1, 0.5]], b = [1, 2]: 1,000 points for a GAN."""
    X = gaussian_2d(int(num_examples), seed=seed)
    train = TensorLoader(X, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    A, b = torch.tensor(GAUSSIAN_A), torch.tensor(GAUSSIAN_B)
    context = {"in_shape": (2,), "true_mean": b.tolist(), "true_cov": (A.T @ A).tolist()}
    return DataBundle("gaussian-2d", "gan", train, context=context)
