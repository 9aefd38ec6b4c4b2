"""Chapter 7 and book 14.10: the from-scratch convolution, pooling and transposed convolution
against the book's worked examples and against torch.nn.functional, forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_forward_backward
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.ops.conv import (
    Conv2D,
    conv2d,
    conv_output_shape,
    conv_transpose2d,
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
    corr2d_vectorized,
    edge_detection_data,
    kernel_to_matrix,
    learn_edge_kernel,
    pool2d,
    trans_conv,
)

FEW = settings(max_examples=20, deadline=None)


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# 7.2 cross-correlation and the edge detector


def test_corr2d_book_example():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[19.0, 25.0], [37.0, 43.0]])
    assert torch.equal(corr2d(X, K), expected)
    assert torch.equal(corr2d_vectorized(X, K), expected)


@FEW
@given(H=st.integers(1, 7), W=st.integers(1, 7), h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 9999))
def test_corr2d_loop_and_vectorized_match_conv2d_forward_and_backward(H, W, h, w, seed):
    h, w = min(h, H), min(w, W)
    g = torch.Generator().manual_seed(seed)
    X, K = randn(g, H, W), randn(g, h, w)
    torch_corr2d = lambda X, K: F.conv2d(X[None, None], K[None, None])[0, 0]  # noqa: E731
    assert_same_forward_backward(corr2d, torch_corr2d, X, K)
    assert_same_forward_backward(corr2d_vectorized, torch_corr2d, X, K)


def test_corr2d_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="does not fit"):
        corr2d(torch.ones(2, 5), torch.ones(3, 1))
    with pytest.raises(ValueError, match="2-D"):
        corr2d_vectorized(torch.ones(1, 2, 5), torch.ones(1, 1))


def test_conv2d_layer_is_corr2d_plus_bias_and_trains():
    layer = Conv2D((1, 2))
    assert layer.weight.shape == (1, 2) and torch.equal(layer.bias.detach(), torch.zeros(1))
    with torch.no_grad():
        layer.bias.fill_(0.5)
    X = torch.randn(6, 8)
    torch.testing.assert_close(layer(X), corr2d(X, layer.weight.detach()) + 0.5)
    layer(X).sum().backward()
    torch.testing.assert_close(layer.bias.grad, torch.tensor([42.0]))  # d sum(Y) / db = number of outputs, 6 * 7


def test_edge_detection_example():
    X, K, Y = edge_detection_data()
    assert X.shape == (6, 8) and Y.shape == (6, 7)
    expected_row = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0])  # white-to-black at 1, black-to-white at 5
    assert torch.equal(Y, expected_row.expand(6, 7))
    assert torch.equal(corr2d(X.t(), K), torch.zeros(8, 5))  # the kernel sees vertical edges only


def test_learned_edge_kernel_with_the_books_settings():
    kernel, losses = learn_edge_kernel()  # lr 3e-2, 10 iterations, as in the book
    assert kernel.shape == (1, 2) and losses.shape == (10,)
    torch.testing.assert_close(kernel, torch.tensor([[1.0, -1.0]]), rtol=0, atol=0.05)
    assert (losses[1:] < losses[:-1]).all() and losses[-1] < 0.05 * losses[0]
    for seed in range(1, 20):  # any start in nn.Conv2d's init range ends within 0.1
        kernel, _ = learn_edge_kernel(seed=seed)
        torch.testing.assert_close(kernel, torch.tensor([[1.0, -1.0]]), rtol=0, atol=0.1)


def test_edge_kernel_loss_curvature_and_the_step_size_limit():
    X, _, Y = edge_detection_data()
    hessian = torch.autograd.functional.hessian(lambda K: ((corr2d_vectorized(X, K) - Y) ** 2).sum(), torch.zeros(1, 2))
    torch.testing.assert_close(hessian.reshape(2, 2), torch.tensor([[36.0, 24.0], [24.0, 36.0]]))  # eigenvalues 60, 12
    _, losses = learn_edge_kernel(lr=4e-2, num_iters=20)  # above 2 / 60: each step scales the error by -1.4
    assert losses[-1] > 100 * losses[0]


# 7.3 padding and stride


def test_output_shape_book_examples():
    X = torch.rand(1, 1, 8, 8)
    for kernel, padding, stride, expected in [
        ((3, 3), 1, 1, (8, 8)),
        ((5, 3), (2, 1), 1, (8, 8)),
        ((3, 3), 1, 2, (4, 4)),
        ((3, 5), (0, 1), (3, 4), (2, 2)),
    ]:
        assert conv_output_shape((8, 8), kernel, padding, stride) == expected
        assert conv2d(X, torch.rand(1, 1, *kernel), padding=padding, stride=stride).shape[-2:] == expected


@FEW
@given(n=st.tuples(st.integers(1, 12), st.integers(1, 12)), k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       p=st.tuples(st.integers(0, 3), st.integers(0, 3)), s=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_output_shape_rule_matches_torch(n, k, p, s):
    if n[0] + 2 * p[0] < k[0] or n[1] + 2 * p[1] < k[1]:
        with pytest.raises(ValueError, match="does not fit"):
            conv_output_shape(n, k, p, s)
        return
    actual = F.conv2d(torch.zeros(1, 1, *n), torch.zeros(1, 1, *k), padding=p, stride=s).shape[-2:]
    assert conv_output_shape(n, k, p, s) == tuple(actual)


# 7.4 channels


def test_multi_channel_book_examples():
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    assert torch.equal(corr2d_multi_in(X, K), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    K = torch.stack((K, K + 1, K + 2), 0)  # (3, 2, 2, 2)
    expected = torch.tensor([[[56.0, 72.0], [104.0, 120.0]], [[76.0, 100.0], [148.0, 172.0]],
                             [[96.0, 128.0], [192.0, 224.0]]])
    assert torch.equal(corr2d_multi_in_out(X, K), expected)
    assert torch.equal(conv2d(X[None], K)[0], expected)
    with pytest.raises(ValueError, match="input channels"):
        corr2d_multi_in(X, K[0, :1])


def test_1x1_convolution_is_a_matrix_product():
    g = torch.Generator().manual_seed(0)
    X, K = randn(g, 3, 3, 3), randn(g, 2, 3, 1, 1)  # the book's shapes
    Y1 = corr2d_multi_in_out_1x1(X, K)
    torch.testing.assert_close(Y1, corr2d_multi_in_out(X, K))
    torch.testing.assert_close(Y1, conv2d(X[None], K)[0])
    assert_same_forward_backward(corr2d_multi_in_out_1x1, lambda X, K: F.conv2d(X[None], K)[0], X, K)


@FEW
@given(n=st.integers(1, 2), c_i=st.integers(1, 3), c_o=st.integers(1, 3),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), with_bias=st.booleans(), seed=st.integers(0, 9999))
def test_conv2d_matches_torch_forward_and_backward(n, c_i, c_o, size, k, p, s, with_bias, seed):
    size = tuple(max(d, kk - 2 * pp) for d, kk, pp in zip(size, k, p))  # the kernel must fit the padded input
    g = torch.Generator().manual_seed(seed)
    X, K, b = randn(g, n, c_i, *size), randn(g, c_o, c_i, *k), randn(g, c_o)
    if with_bias:
        assert_same_forward_backward(lambda X, K, b: conv2d(X, K, b, p, s),
                                     lambda X, K, b: F.conv2d(X, K, b, stride=s, padding=p), X, K, b)
    else:
        assert_same_forward_backward(lambda X, K: conv2d(X, K, padding=p, stride=s),
                                     lambda X, K: F.conv2d(X, K, stride=s, padding=p), X, K)


def test_multi_channel_reference_matches_conv2d_backward():
    g = torch.Generator().manual_seed(0)
    X, K = randn(g, 2, 5, 4), randn(g, 3, 2, 2, 3)
    assert_same_forward_backward(corr2d_multi_in_out, lambda X, K: conv2d(X[None], K)[0], X, K)


def test_conv2d_errors_name_the_bad_input():
    X = torch.ones(1, 3, 5, 5)
    with pytest.raises(ValueError, match="X has 3 channels"):
        conv2d(X, torch.ones(2, 4, 3, 3))
    with pytest.raises(ValueError, match="bias must have one entry per output channel"):
        conv2d(X, torch.ones(2, 3, 3, 3), bias=torch.ones(3))
    with pytest.raises(ValueError, match="4-D"):
        conv2d(X[0], torch.ones(2, 3, 3, 3))


# 7.5 pooling


def test_pooling_book_examples():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    assert torch.equal(pool2d(X, (2, 2)), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(pool2d(X, (2, 2), "avg"), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    X = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    assert torch.equal(pool2d(X, 3, stride=3), torch.tensor([[[[10.0]]]]))  # nn.MaxPool2d(3): stride = window
    assert torch.equal(pool2d(X, 3, padding=1, stride=2), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    assert torch.equal(pool2d(X, (2, 3), padding=(0, 1), stride=(2, 3)), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    X = torch.cat((X, X + 1), 1)  # channels are pooled separately
    expected = torch.tensor([[[[5.0, 7.0], [13.0, 15.0]], [[6.0, 8.0], [14.0, 16.0]]]])
    assert torch.equal(pool2d(X, 3, padding=1, stride=2), expected)


@FEW
@given(mode=st.sampled_from(["max", "avg"]), n=st.integers(1, 2), c=st.integers(1, 2),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       ties=st.booleans(), seed=st.integers(0, 9999))
def test_pool2d_matches_torch_forward_and_backward(mode, n, c, size, k, p, s, ties, seed):
    p = (min(p[0], k[0] // 2), min(p[1], k[1] // 2))  # torch allows at most half the window
    size = tuple(max(d, kk - 2 * pp) for d, kk, pp in zip(size, k, p))
    g = torch.Generator().manual_seed(seed)
    # small integers make ties, where max pooling must send the gradient to the first maximum only
    X = torch.randint(0, 3, (n, c, *size), generator=g).double() if ties else randn(g, n, c, *size)
    theirs = F.max_pool2d if mode == "max" else F.avg_pool2d
    assert_same_forward_backward(lambda X: pool2d(X, k, mode, p, s),
                                 lambda X: theirs(X, k, stride=s, padding=p), X)


def test_pool2d_errors():
    X = torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match="more than half"):
        pool2d(X, 2, padding=2)
    with pytest.raises(ValueError, match="'max' or 'avg'"):
        pool2d(X, 2, mode="sum")
    with pytest.raises(ValueError, match="floating-point"):
        pool2d(torch.ones(4, 4, dtype=torch.int64), 2)


# 14.10 transposed convolution


def test_transposed_convolution_book_examples():
    X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])
    assert torch.equal(trans_conv(X, K), expected)
    X4, K4 = X.reshape(1, 1, 2, 2), K.reshape(1, 1, 2, 2)
    assert torch.equal(conv_transpose2d(X4, K4)[0, 0], expected)
    assert torch.equal(conv_transpose2d(X4, K4, padding=1), torch.tensor([[[[4.0]]]]))
    strided = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 3.0], [0.0, 2.0, 0.0, 3.0], [4.0, 6.0, 6.0, 9.0]])
    assert torch.equal(conv_transpose2d(X4, K4, stride=2)[0, 0], strided)
    X = torch.rand(1, 10, 16, 16)  # the book's check: a transposed conv undoes the conv's change of shape
    Y = conv2d(X, torch.rand(20, 10, 5, 5), padding=2, stride=3)
    assert conv_transpose2d(Y, torch.rand(20, 10, 5, 5), padding=2, stride=3).shape == X.shape


def test_trans_conv_loop_matches_torch_backward():
    g = torch.Generator().manual_seed(0)
    X, K = randn(g, 3, 4), randn(g, 2, 3)
    assert_same_forward_backward(trans_conv, lambda X, K: F.conv_transpose2d(X[None, None], K[None, None])[0, 0], X, K)


@FEW
@given(n=st.integers(1, 2), c_i=st.integers(1, 3), c_o=st.integers(1, 3),
       size=st.tuples(st.integers(1, 5), st.integers(1, 5)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       op=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       with_bias=st.booleans(), seed=st.integers(0, 9999))
def test_conv_transpose2d_matches_torch_forward_and_backward(n, c_i, c_o, size, k, s, p, op, with_bias, seed):
    op = (op[0] % s[0], op[1] % s[1])  # output_padding must be smaller than the stride
    # padding may not remove the whole output: (H - 1) s - 2 p + k + op >= 1
    p = tuple(min(pp, ((d - 1) * ss + kk + oo - 1) // 2) for pp, d, ss, kk, oo in zip(p, size, s, k, op))
    g = torch.Generator().manual_seed(seed)
    X, K, b = randn(g, n, c_i, *size), randn(g, c_i, c_o, *k), randn(g, c_o)
    bias = b if with_bias else None
    assert_same_forward_backward(lambda X, K: conv_transpose2d(X, K, bias, s, p, op),
                                 lambda X, K: F.conv_transpose2d(X, K, bias, s, p, op), X, K)


def test_convolution_as_a_matrix_book_example():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    W = kernel_to_matrix(K, (3, 3))
    assert torch.equal(W, torch.tensor([[1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0],
                                        [0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0],
                                        [0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0],
                                        [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0]]))
    Y = corr2d(X, K)
    assert torch.equal(Y, torch.tensor([[27.0, 37.0], [57.0, 67.0]]))
    assert torch.equal((W @ X.reshape(-1)).reshape(2, 2), Y)
    assert torch.equal((W.T @ Y.reshape(-1)).reshape(3, 3), trans_conv(Y, K))


@FEW
@given(size=st.tuples(st.integers(1, 6), st.integers(1, 6)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       seed=st.integers(0, 9999))
def test_conv_is_W_and_transposed_conv_is_W_transpose(size, k, p, s, seed):
    size = tuple(max(d, kk - 2 * pp) for d, kk, pp in zip(size, k, p))
    g = torch.Generator().manual_seed(seed)
    X, K = randn(g, *size), randn(g, *k)
    W = kernel_to_matrix(K, size, p, s)
    Y = conv2d(X[None, None], K[None, None], padding=p, stride=s)[0, 0]
    assert W.shape == (Y.numel(), X.numel())
    torch.testing.assert_close((W @ X.reshape(-1)).reshape(Y.shape), Y)
    # the (n + 2p - k) mod s last rows/columns of the padded input lie in no window; output_padding puts them back
    op = tuple((d + 2 * pp - kk) % ss for d, pp, kk, ss in zip(size, p, k, s))
    Z = randn(g, *Y.shape)
    transposed = conv_transpose2d(Z[None, None], K[None, None], stride=s, padding=p, output_padding=op)[0, 0]
    torch.testing.assert_close((W.T @ Z.reshape(-1)).reshape(size), transposed)


def test_transposed_conv_is_the_gradient_of_conv():
    g = torch.Generator().manual_seed(0)
    X, K = randn(g, 2, 3, 7, 7).requires_grad_(), randn(g, 4, 3, 3, 2)
    Y = conv2d(X, K, padding=1, stride=2)
    Z = randn(g, *Y.shape)
    (grad,) = torch.autograd.grad((Y * Z).sum(), X)  # d <conv(X), Z> / dX = conv^T Z
    # no stride-2 window of width 2 reaches the last padded column, so without output_padding the result is one
    # column narrower than X
    torch.testing.assert_close(grad, conv_transpose2d(Z, K, stride=2, padding=1, output_padding=(0, 1)))


def test_kernel_to_matrix_is_differentiable_in_the_kernel():
    g = torch.Generator().manual_seed(0)
    X, K = randn(g, 4, 5), randn(g, 2, 2)
    assert_same_forward_backward(lambda K: kernel_to_matrix(K, (4, 5)) @ X.reshape(-1),
                                 lambda K: corr2d_vectorized(X, K).reshape(-1), K)
