"""Numerical stability: exploding products, sigmoid's small gradient, vanishing gradients, the plots."""

import pytest
import torch

from divekit.book.stability import (
    activation_and_gradient,
    activation_plots,
    matrix_product_demo,
    plot_sigmoid_gradient,
    sigmoid_gradient_demo,
    vanishing_gradient_demo,
)
from divekit.core.errors import ConfigError
from divekit.ops.init import kaiming_normal_


@pytest.mark.parametrize("seed", range(5))
def test_product_of_100_random_matrices_explodes(seed):
    M = matrix_product_demo(n=100, size=4, seed=seed)
    assert M.shape == (4, 4)
    assert torch.isfinite(M).all()
    assert M.abs().max().item() > 1e10
    assert torch.equal(M, matrix_product_demo(n=100, size=4, seed=seed))


def test_product_grows_with_the_number_of_factors():
    sizes = [matrix_product_demo(n=n, seed=0).abs().max().item() for n in (1, 25, 50, 100)]
    assert sizes[0] < 10
    assert sizes == sorted(sizes) and sizes[-1] > 1e10 * sizes[0]


def test_sigmoid_gradient_peaks_at_a_quarter_and_vanishes():
    x, y, grad = sigmoid_gradient_demo()
    torch.testing.assert_close(y, torch.sigmoid(x))
    torch.testing.assert_close(grad, y * (1 - y))  # autograd agrees with s(x)(1 - s(x))
    assert grad.max().item() == pytest.approx(0.25, abs=1e-7)
    assert x[grad.argmax()].item() == 0.0
    _, _, tails = sigmoid_gradient_demo(torch.tensor([-10.0, 10.0]))
    assert (tails < 1e-4).all() and (tails > 0).all()


def test_relu_and_tanh_gradients():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    y, grad = activation_and_gradient("relu", x)
    assert torch.equal(y, torch.tensor([0.0, 0.0, 0.0, 0.5, 2.0]))
    assert torch.equal(grad, torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]))
    y, grad = activation_and_gradient("tanh", x)
    torch.testing.assert_close(grad, 1 - torch.tanh(x) ** 2)
    with pytest.raises(ConfigError, match="sigmoid"):
        activation_and_gradient("sigmoi", x)


def test_deep_sigmoid_net_gradient_vanishes():
    sigmoid = vanishing_gradient_demo(depth=20, activation="sigmoid")
    relu = vanishing_gradient_demo(depth=20, activation="relu")
    assert sigmoid.shape == relu.shape == (20,)
    assert sigmoid[0] < 1e-4 * relu[0]  # four or more orders of magnitude at the first layer
    assert sigmoid[0] < 1e-10 * sigmoid[-1]  # and it shrinks from the last layer to the first
    assert torch.equal(sigmoid, vanishing_gradient_demo(depth=20, activation="sigmoid"))  # seeded


def test_sigmoid_gradient_shrinks_with_depth():
    first = [vanishing_gradient_demo(depth=d, activation="sigmoid")[0].item() for d in (2, 5, 10, 20)]
    assert first == sorted(first, reverse=True) and first[-1] < 1e-8 * first[0]


def test_relu_with_kaiming_init_keeps_the_gradient():
    g = vanishing_gradient_demo(depth=20, activation="relu", init=kaiming_normal_)
    assert g[0] > 0.05 * g[-1]


def test_demo_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    vanishing_gradient_demo(depth=3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("plot", [activation_plots, plot_sigmoid_gradient])
def test_plots_write_png_files(tmp_path, plot):
    path = plot(tmp_path / "fig" / "plot.png")
    assert path == tmp_path / "fig" / "plot.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


def test_the_new_activations_and_their_closed_form_gradients():
    x = torch.tensor([-3.0, -0.5, 0.5, 3.0], dtype=torch.float64)
    _, grad = activation_and_gradient("elu", x)
    torch.testing.assert_close(grad, torch.where(x > 0, 1.0, torch.exp(x)))  # ELU' = exp(x) on the negative side
    _, grad = activation_and_gradient("silu", x)
    s = torch.sigmoid(x)
    torch.testing.assert_close(grad, s * (1 + x * (1 - s)))  # (x s)' = s + x s (1 - s)
    _, grad = activation_and_gradient("gelu", x)
    phi = torch.exp(-x ** 2 / 2) / (2 * torch.pi) ** 0.5
    torch.testing.assert_close(grad, 0.5 * (1 + torch.erf(x / 2 ** 0.5)) + x * phi)  # Phi(x) + x phi(x)
    _, grad = activation_and_gradient("prelu", x)
    torch.testing.assert_close(grad, torch.where(x > 0, 1.0, 0.25).double())
    g = vanishing_gradient_demo(depth=5, activation="gelu")  # every activation builds the deep net
    assert g.shape == (5,) and (g > 0).all()


def test_activation_plots_take_a_subset_and_reject_unknown_names(tmp_path):
    assert activation_plots(tmp_path / "two.png", ["elu", "gelu"]).stat().st_size > 5000
    with pytest.raises(ConfigError, match="'selu'"):
        activation_plots(tmp_path / "bad.png", ["sel"])
