"""Dilation and groups in the from-scratch conv2d against F.conv2d (forward and backward), the
depthwise-separable convolution, the output-size rule with dilation, and the receptive field of a
stack of layers against the one autograd finds."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import assert_same_forward_backward, input_patch
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.ops.conv import conv2d, conv_output_shape, receptive_field

FEW = settings(max_examples=20, deadline=None)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 2), groups=st.integers(1, 3), c_i_per=st.integers(1, 2), c_o_per=st.integers(1, 2),
       size=st.tuples(st.integers(1, 9), st.integers(1, 9)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       d=st.tuples(st.integers(1, 3), st.integers(1, 3)), with_bias=st.booleans(), seed=st.integers(0, 9999))
def test_dilated_grouped_conv2d_matches_torch(n, groups, c_i_per, c_o_per, size, k, p, s, d, with_bias, seed):
    # the dilated kernel must fit the padded input
    size = tuple(max(n_, dd * (kk - 1) + 1 - 2 * pp) for n_, kk, pp, dd in zip(size, k, p, d))
    c_i, c_o = groups * c_i_per, groups * c_o_per
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, c_i, *size, generator=g, dtype=torch.float64)
    K = torch.randn(c_o, c_i_per, *k, generator=g, dtype=torch.float64)
    b = torch.randn(c_o, generator=g, dtype=torch.float64) if with_bias else None
    inputs = (X, K) if b is None else (X, K, b)
    assert_same_forward_backward(lambda X, K, *b: conv2d(X, K, *b, padding=p, stride=s, dilation=d, groups=groups),
                                 lambda X, K, *b: F.conv2d(X, K, *b, stride=s, padding=p, dilation=d, groups=groups),
                                 *inputs)


def test_depthwise_separable_convolution_matches_torch_and_saves_weights():
    torch.manual_seed(0)
    c_i, c_o = 8, 16
    depthwise, pointwise = nn.Conv2d(c_i, c_i, 3, padding=1, groups=c_i), nn.Conv2d(c_i, c_o, 1)
    X = torch.randn(2, c_i, 10, 10, dtype=torch.float64)
    params = [p.detach().double() for p in (depthwise.weight, depthwise.bias, pointwise.weight, pointwise.bias)]

    def ours(X, Kd, bd, Kp, bp):
        return conv2d(conv2d(X, Kd, bd, padding=1, groups=c_i), Kp, bp)  # (N, C_o, H, W)

    def theirs(X, Kd, bd, Kp, bp):
        return F.conv2d(F.conv2d(X, Kd, bd, padding=1, groups=c_i), Kp, bp)

    assert_same_forward_backward(ours, theirs, X, *params)
    separable = sum(p.numel() for p in params[::2])
    assert separable == c_i * 9 + c_i * c_o < nn.Conv2d(c_i, c_o, 3).weight.numel() == c_o * c_i * 9


def test_conv2d_rejects_bad_groups():
    X = torch.ones(1, 4, 5, 5)
    with pytest.raises(ValueError, match="groups must be a positive int dividing"):
        conv2d(X, torch.ones(6, 4, 3, 3), groups=3)
    with pytest.raises(ValueError, match="with groups=2 K .* needs 2 input channels"):
        conv2d(X, torch.ones(6, 4, 3, 3), groups=2)
    with pytest.raises(ValueError, match="spanning 5x5 with dilation"):
        conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3), dilation=2)


def test_output_shape_with_dilation_book_formula():
    # floor((n + 2p - d(k - 1) - 1) / s) + 1: 3x3, dilation 2 on 10x10 -> 6x6; with padding 2 it stays 10x10
    assert conv_output_shape(10, 3, dilation=2) == (6, 6)
    assert conv_output_shape(10, 3, padding=2, dilation=2) == (10, 10)
    assert conv_output_shape((10, 11), (3, 2), (1, 0), (2, 3), (3, 2)) == ((10 + 2 - 6 - 1) // 2 + 1, (11 - 2 - 1) // 3 + 1)


@FEW
@given(n=st.tuples(st.integers(1, 14), st.integers(1, 14)), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       p=st.tuples(st.integers(0, 3), st.integers(0, 3)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       d=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_output_shape_with_dilation_matches_torch(n, k, p, s, d):
    if any(nn_ + 2 * pp < dd * (kk - 1) + 1 for nn_, kk, pp, dd in zip(n, k, p, d)):
        with pytest.raises(ValueError, match="does not fit"):
            conv_output_shape(n, k, p, s, d)
        return
    actual = F.conv2d(torch.zeros(1, 1, *n), torch.zeros(1, 1, *k), padding=p, stride=s, dilation=d).shape[-2:]
    assert conv_output_shape(n, k, p, s, d) == tuple(actual)


@pytest.mark.parametrize("layers", [
    [(3, 1, 1)] * 3,                                  # three 3x3 convs: 7x7, as one 7x7 conv
    [(3, 1, 1), (3, 1, 2), (3, 1, 4)],                # dilations 1, 2, 4 (WaveNet, DeepLab): 15x15
    [(5, 1, 1), (2, 2, 1), (5, 1, 1), (2, 2, 1)],     # LeNet's convs and pools: 16x16
    [((3, 5), (2, 1), (1, 2)), (3, 2, 3), (1, 1, 1)], # rectangular, strided, dilated
])
def test_receptive_field_matches_the_gradient_of_one_output_pixel(layers):
    net = nn.Sequential(*(nn.Conv2d(1, 1, kernel, stride=stride, dilation=dilation, bias=False)
                          for kernel, stride, dilation in layers))
    for conv in net:
        nn.init.ones_(conv.weight)  # positive weights: no gradient cancels to zero by chance
    (r_h, r_w), (j_h, j_w) = receptive_field(layers)
    top, rows, left, cols = input_patch(net, 48, 0, 0)
    assert (top, rows, left, cols) == (0, r_h, 0, r_w)
    # the next output pixel down and to the right sees a patch j_h rows lower and j_w columns further
    assert input_patch(net, 48, 1, 1) == (j_h, r_h, j_w, r_w)


def test_receptive_field_worked_example():
    assert receptive_field([(3, 1, 1)] * 3) == ((7, 7), (1, 1))
    assert receptive_field([(5, 1, 1), (2, 2, 1), (5, 1, 1), (2, 2, 1)]) == ((16, 16), (4, 4))
    assert receptive_field([]) == ((1, 1), (1, 1))
