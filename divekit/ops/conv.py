"""Chapter 7 (book 7.1-7.5) and book 14.10: convolution, padding, stride, channels, pooling and
transposed convolution, from scratch.

Where the book writes a loop, the loop is kept as the reference: `corr2d`, `corr2d_multi_in`,
`corr2d_multi_in_out` and `trans_conv` follow the book line by line on unbatched tensors. The
vectorized versions do the same arithmetic on whole tensors and are the ones to use in a model:
`corr2d_vectorized`, `conv2d`, `pool2d` and `conv_transpose2d` read every window as a strided view
of the (padded) input via `Tensor.unfold` (no copy) and reduce it with one einsum, max or mean.
`conv2d`, `pool2d` and `conv_transpose2d` take batched (N, C, H, W) input with padding and stride
(conv2d also dilation and groups) and match F.conv2d, F.max_pool2d / F.avg_pool2d and
F.conv_transpose2d, forward and backward. `conv_output_shape` and `receptive_field` are the
size formulas: the output of one layer, and the input patch one output pixel of a stack sees.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

IntPair = int | Sequence[int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    return pair


def _check_dim(X: torch.Tensor, dim: int, name: str, layout: str) -> None:
    if X.dim() != dim:
        raise ValueError(f"{name} must be a {dim}-D tensor {layout}, got shape {tuple(X.shape)}")


def _windows(X: torch.Tensor, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Every (k_h, k_w) window of X's last two dims at the given stride, as a view of X.

    (..., H, W) -> (..., H', W', k_h, k_w), with window [i, j] = X[..., i*s_h : i*s_h + k_h, j*s_w : j*s_w + k_w].
    """
    return X.unfold(-2, window[0], stride[0]).unfold(-2, window[1], stride[1])


def conv_output_shape(in_hw: IntPair, kernel: IntPair, padding: IntPair = 0, stride: IntPair = 1,
                      dilation: IntPair = 1) -> tuple[int, int]:
    """Output height and width of a convolution or pooling window (book 7.3).

        floor((n_h - k_h + p_h + s_h) / s_h) x floor((n_w - k_w + p_w + s_w) / s_w)

    where p_h, p_w are the *total* padding. `padding`, like nn.Conv2d's, is what is added on each
    side, so p_h = 2 * padding[0]: an 8x8 input with a 3x3 kernel and padding 1 stays 8x8.

    With dilation d the kernel's taps are d apart, so it spans d (k - 1) + 1 pixels and takes the
    place of k in the formula; torch writes the same as floor((n + 2 padding - d (k - 1) - 1) / s) + 1.
    """
    (n_h, n_w), (k_h, k_w) = _pair(in_hw, "in_hw"), _pair(kernel, "kernel")
    (pad_h, pad_w), (s_h, s_w) = _pair(padding, "padding"), _pair(stride, "stride")
    d_h, d_w = _pair(dilation, "dilation")
    if min(k_h, k_w, s_h, s_w, d_h, d_w) < 1 or min(pad_h, pad_w) < 0:
        raise ValueError(f"kernel, stride and dilation must be positive and padding >= 0, got kernel {(k_h, k_w)}, "
                         f"stride {(s_h, s_w)}, dilation {(d_h, d_w)}, padding {(pad_h, pad_w)}")
    span_h, span_w = d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1  # the dilated kernel's extent
    p_h, p_w = 2 * pad_h, 2 * pad_w
    out = ((n_h - span_h + p_h + s_h) // s_h, (n_w - span_w + p_w + s_w) // s_w)
    if min(out) < 1:
        dilated = f" (spanning {span_h}x{span_w} with dilation {(d_h, d_w)})" if (d_h, d_w) != (1, 1) else ""
        raise ValueError(f"a {k_h}x{k_w} window{dilated} does not fit in a {n_h}x{n_w} input padded by "
                         f"{(pad_h, pad_w)} on each side; use a smaller kernel, more padding or a larger input")
    return out


def receptive_field(layers: Sequence[tuple[IntPair, IntPair, IntPair]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Receptive field and jump of a stack of convolutions and pools, given as (kernel, stride, dilation) per layer.

    Returns ((r_h, r_w), (j_h, j_w)): one output pixel of the last layer depends on an r x r patch
    of the input, and neighbouring output pixels are j input pixels apart. Layer by layer, from
    r = j = 1 at the input,

        r_l = r_{l-1} + d_l (k_l - 1) j_{l-1}        j_l = j_{l-1} s_l

    a layer widens the field by its kernel's extent less one, measured in the previous layer's
    pixels, each j_{l-1} input pixels wide. Padding shifts the field but does not change its size
    (at the border part of it falls on the padding). Pointwise layers (activations, batch norm,
    1x1 convolutions with stride 1) leave both unchanged and can be left out.
    """
    (r_h, r_w), (j_h, j_w) = (1, 1), (1, 1)
    for kernel, stride, dilation in layers:
        (k_h, k_w), (s_h, s_w), (d_h, d_w) = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(dilation, "dilation")
        r_h, r_w = r_h + d_h * (k_h - 1) * j_h, r_w + d_w * (k_w - 1) * j_w
        j_h, j_w = j_h * s_h, j_w * s_w
    return (r_h, r_w), (j_h, j_w)


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Two-dimensional cross-correlation by the book's loop (book 7.2.1).

        Y[i, j] = sum_{a, b} X[i + a, j + b] K[a, b]

    A (H, W) input and an (h, w) kernel give an (H - h + 1, W - w + 1) output. This is what deep
    learning calls convolution: the kernel is not flipped.
    """
    _check_dim(X, 2, "X", "(H, W)")
    _check_dim(K, 2, "K", "(h, w)")
    h, w = K.shape
    Y = torch.zeros(conv_output_shape(X.shape, K.shape), dtype=torch.result_type(X, K), device=X.device)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def corr2d_vectorized(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """corr2d without Python loops: all windows as one strided view, summed against K by einsum."""
    _check_dim(X, 2, "X", "(H, W)")
    _check_dim(K, 2, "K", "(h, w)")
    conv_output_shape(X.shape, K.shape)  # a clear error when K is larger than X
    return torch.einsum("ijab,ab->ij", _windows(X, K.shape, (1, 1)), K)  # (H - h + 1, W - w + 1)


class Conv2D(nn.Module):
    """The book's convolutional layer (book 7.2.3): Y = corr2d(X, K) + b.

    The kernel K (`weight`) starts uniform in [0, 1) and the scalar bias b at 0, as in the book.
    """

    def __init__(self, kernel_size: IntPair):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(_pair(kernel_size, "kernel_size")))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return corr2d_vectorized(X, self.weight) + self.bias  # (H - h + 1, W - w + 1)


def edge_detection_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The book's edge-detection example (book 7.2.2): (X, K, Y).

    X is a 6x8 image of ones with a black band (zeros) in columns 2-5, K = [[1, -1]], and
    Y = corr2d(X, K) is 6x7 with 1 at the white-to-black edge (column 1), -1 at the
    black-to-white edge (column 5) and 0 elsewhere.
    """
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    return X, K, corr2d(X, K)


def learn_edge_kernel(lr: float = 3e-2, num_iters: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learn the (1, 2) edge kernel from the book's X and Y by gradient descent (book 7.2.4).

    Minimizes the book's loss L(K) = sum_{i,j} (corr2d(X, K)[i, j] - Y[i, j])^2 with full-batch
    gradient descent from K drawn uniformly in [-1/sqrt(2), 1/sqrt(2)] (nn.Conv2d's default
    initialization for a 1x2 kernel). Returns the learned kernel (1, 2) and the loss before each
    step (num_iters,).

    L is quadratic with Hessian 2 * sum over windows of x x^T = [[36, 24], [24, 36]], eigenvalues
    60 along (1, 1) and 12 along (1, -1). Each step multiplies the error along them by
    1 - 60 lr and 1 - 12 lr: with the book's lr = 3e-2 that is -0.8 and 0.64, so after the
    book's 10 iterations the error is at most 0.8^10 = 0.11 of the initial one and K is within
    0.1 of [1, -1] for every initial K in that range. lr must stay below 2/60 = 0.033: the
    book's rate is close to the edge, and lr = 4e-2 (factor -1.4) diverges.
    """
    if num_iters < 1:
        raise ValueError(f"num_iters must be at least 1, got {num_iters}")
    X, _, Y = edge_detection_data()
    g = torch.Generator().manual_seed(seed)
    K = ((torch.rand(1, 2, generator=g) * 2 - 1) / math.sqrt(2)).requires_grad_()
    losses = []
    for _ in range(num_iters):
        loss = ((corr2d_vectorized(X, K) - Y) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, K)
        with torch.no_grad():
            K -= lr * grad
        losses.append(loss.detach())
    return K.detach(), torch.stack(losses)


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlation over several input channels, summed (book 7.4.1).

    (C_i, H, W) input, (C_i, h, w) kernel -> (H - h + 1, W - w + 1): Y = sum_c corr2d(X[c], K[c]).
    """
    _check_dim(X, 3, "X", "(C_i, H, W)")
    _check_dim(K, 3, "K", "(C_i, h, w)")
    if X.shape[0] != K.shape[0]:
        raise ValueError(f"X has {X.shape[0]} input channels but K has {K.shape[0]}; give K one slice per channel")
    return sum(corr2d(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """One corr2d_multi_in per output channel, stacked (book 7.4.2).

    (C_i, H, W) input, (C_o, C_i, h, w) kernel -> (C_o, H - h + 1, W - w + 1).
    """
    _check_dim(K, 4, "K", "(C_o, C_i, h, w)")
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as one matrix product (book 7.4.3).

    A 1x1 kernel mixes channels pixel by pixel, so with the pixels as columns it is a fully
    connected layer applied at every pixel: Y = K X with K (C_o, C_i) and X (C_i, H * W).
    """
    _check_dim(X, 3, "X", "(C_i, H, W)")
    _check_dim(K, 4, "K", "(C_o, C_i, 1, 1)")
    if K.shape[1:] != (X.shape[0], 1, 1):
        raise ValueError(f"K must have shape (C_o, {X.shape[0]}, 1, 1) for X with {X.shape[0]} channels, "
                         f"got {tuple(K.shape)}")
    c_i, h, w = X.shape
    c_o = K.shape[0]
    Y = K.reshape(c_o, c_i) @ X.reshape(c_i, h * w)  # (C_o, H * W)
    return Y.reshape(c_o, h, w)


def _check_batched(X: torch.Tensor, K: torch.Tensor, bias: torch.Tensor | None, kernel_layout: str,
                   in_dim: int, out_dim: int) -> None:
    _check_dim(X, 4, "X", "(N, C, H, W)")
    _check_dim(K, 4, "K", kernel_layout)
    if X.shape[1] != K.shape[in_dim]:
        raise ValueError(f"X has {X.shape[1]} channels but K {kernel_layout} expects {K.shape[in_dim]} "
                         f"(K has shape {tuple(K.shape)})")
    if bias is not None and bias.shape != (K.shape[out_dim],):
        raise ValueError(f"bias must have one entry per output channel, shape ({K.shape[out_dim]},), "
                         f"got {tuple(bias.shape)}")


def conv2d(X: torch.Tensor, K: torch.Tensor, bias: torch.Tensor | None = None, padding: IntPair = 0,
           stride: IntPair = 1, dilation: IntPair = 1, groups: int = 1) -> torch.Tensor:
    """Batched multi-channel convolution with padding, stride, dilation and groups (book 7.3-7.4), as F.conv2d.

        Y[n, o, i, j] = b[o] + sum_{c, a, b} X_pad[n, g C_i/G + c, i*s_h + a*d_h, j*s_w + b*d_w] K[o, c, a, b]

    X is (N, C_i, H, W), K is (C_o, C_i / groups, k_h, k_w) and bias (C_o,); X_pad is X with
    `padding` rows and columns of zeros on each side. The output is (N, C_o, H', W') with H', W'
    from conv_output_shape.

    dilation (d_h, d_w) spaces the kernel's taps d apart (an "atrous" convolution): a 3x3 kernel
    with dilation 2 covers a 5x5 patch with 9 weights. groups G splits the input channels and the
    output channels into G groups, and output group g (channels g C_o/G ... (g+1) C_o/G - 1) sees
    only input group g = o // (C_o / G): G separate convolutions side by side, with G times fewer
    weights and multiply-adds. groups = C_i (with C_o a multiple of C_i) is the depthwise
    convolution; followed by a 1x1 convolution it is the depthwise-separable convolution of
    MobileNet and Xception.
    """
    _check_dim(X, 4, "X", "(N, C, H, W)")
    _check_dim(K, 4, "K", "(C_o, C_i / groups, k_h, k_w)")
    if not isinstance(groups, int) or groups < 1 or X.shape[1] % groups or K.shape[0] % groups:
        raise ValueError(f"groups must be a positive int dividing both the {X.shape[1]} input and the {K.shape[0]} "
                         f"output channels, got {groups!r}")
    if X.shape[1] // groups != K.shape[1]:
        raise ValueError(f"X has {X.shape[1]} channels, so with groups={groups} K (C_o, C_i / groups, k_h, k_w) needs "
                         f"{X.shape[1] // groups} input channels, but K has shape {tuple(K.shape)}")
    if bias is not None and bias.shape != (K.shape[0],):
        raise ValueError(f"bias must have one entry per output channel, shape ({K.shape[0]},), got {tuple(bias.shape)}")
    k_h, k_w = K.shape[-2:]
    (pad_h, pad_w), stride, (d_h, d_w) = _pair(padding, "padding"), _pair(stride, "stride"), _pair(dilation, "dilation")
    conv_output_shape(X.shape[-2:], (k_h, k_w), (pad_h, pad_w), stride, (d_h, d_w))  # a clear error if K does not fit
    X = F.pad(X, (pad_w, pad_w, pad_h, pad_h))  # (N, C_i, H + 2 pad_h, W + 2 pad_w)
    span = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)
    windows = _windows(X, span, stride)[..., ::d_h, ::d_w]  # (N, C_i, H', W', k_h, k_w): every d-th tap
    N, C_i, H_o, W_o = windows.shape[:4]
    windows = windows.reshape(N, groups, C_i // groups, H_o, W_o, k_h, k_w)  # (N, G, C_i/G, H', W', k_h, k_w)
    K_g = K.reshape(groups, K.shape[0] // groups, *K.shape[1:])  # (G, C_o/G, C_i/G, k_h, k_w)
    Y = torch.einsum("ngchwab,gocab->ngohw", windows, K_g)  # (N, G, C_o/G, H', W')
    Y = Y.reshape(N, K.shape[0], H_o, W_o)  # (N, C_o, H', W'), output group g first
    return Y if bias is None else Y + bias.reshape(1, -1, 1, 1)


def pool2d(X: torch.Tensor, pool_size: IntPair, mode: str = "max", padding: IntPair = 0,
           stride: IntPair = 1) -> torch.Tensor:
    """Max or average pooling over every pool_size window of X's last two dims (book 7.5).

        Y[..., i, j] = max (or mean) over a, b of X_pad[..., i*s_h + a, j*s_w + b]

    X is (H, W), (N, C, H, W) or any (..., H, W); each channel is pooled on its own. Padding
    matches torch: max pooling pads with -inf, so padding never wins (F.max_pool2d); average
    pooling pads with zeros and always divides by the full window size (F.avg_pool2d with its
    default count_include_pad=True). As torch does, padding may be at most half the window.

    stride defaults to 1, as in the book's pool2d; nn.MaxPool2d and F.max_pool2d default it to the
    window size instead, so pass stride=pool_size for their behaviour.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if X.dim() < 2 or not X.is_floating_point():
        raise ValueError(f"X must be a floating-point tensor (..., H, W), got {X.dtype} of shape {tuple(X.shape)}; "
                         "convert it with X.float()")
    window, (pad_h, pad_w), stride = _pair(pool_size, "pool_size"), _pair(padding, "padding"), _pair(stride, "stride")
    if pad_h > window[0] // 2 or pad_w > window[1] // 2:
        raise ValueError(f"padding {(pad_h, pad_w)} is more than half the {window[0]}x{window[1]} pool window; "
                         "torch's pooling allows at most half, so that no window lies wholly in the padding")
    conv_output_shape(X.shape[-2:], window, (pad_h, pad_w), stride)  # a clear error if the window does not fit
    fill = -math.inf if mode == "max" else 0.0
    X = F.pad(X, (pad_w, pad_w, pad_h, pad_h), value=fill)  # (..., H + 2 pad_h, W + 2 pad_w)
    windows = _windows(X, window, stride).flatten(-2)  # (..., H', W', p_h * p_w)
    if mode == "max":
        # max over a dim sends the whole gradient to the first maximal element, as F.max_pool2d
        # does; amax would split it between ties.
        return windows.max(dim=-1).values
    return windows.mean(dim=-1)


def trans_conv(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Basic transposed convolution by the book's loop (book 14.10.1).

    Each input element X[i, j] adds the kernel scaled by it, X[i, j] * K, into the output window
    starting at (i, j): an (H, W) input and an (h, w) kernel give (H + h - 1, W + w - 1).
    """
    _check_dim(X, 2, "X", "(H, W)")
    _check_dim(K, 2, "K", "(h, w)")
    h, w = K.shape
    Y = torch.zeros(X.shape[0] + h - 1, X.shape[1] + w - 1, dtype=torch.result_type(X, K), device=X.device)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Y[i:i + h, j:j + w] += X[i, j] * K
    return Y


def conv_transpose2d(X: torch.Tensor, K: torch.Tensor, bias: torch.Tensor | None = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0) -> torch.Tensor:
    """Batched multi-channel transposed convolution with stride and padding (book 14.10.2-3), as
    F.conv_transpose2d.

        Y_full[n, o, i*s_h + a, j*s_w + b] += X[n, c, i, j] K[c, o, a, b]    (summed over c, i, j, a, b)

    X is (N, C_i, H, W) and K is (C_i, C_o, k_h, k_w), the layout of nn.ConvTranspose2d's weight.
    Y_full is ((H - 1) s_h + k_h) x ((W - 1) s_w + k_w); as in the book, padding is applied to the
    output: `padding` rows and columns are removed from each side. output_padding (< stride) adds
    that many rows/columns back at the bottom/right, to pick among the input sizes that a
    strided conv2d maps to the same output size. Output height: (H - 1) s_h - 2 padding + k_h + output_padding.

    Where trans_conv loops over the input elements, this loops over the k_h * k_w kernel offsets:
    at offset (a, b) the whole input grid, mixed across channels by K[:, :, a, b], lands on the
    output rows a, a + s_h, a + 2 s_h, ... and columns b, b + s_w, ...
    """
    _check_batched(X, K, bias, "(C_i, C_o, k_h, k_w)", in_dim=0, out_dim=1)
    (s_h, s_w), (pad_h, pad_w) = _pair(stride, "stride"), _pair(padding, "padding")
    out_pad_h, out_pad_w = _pair(output_padding, "output_padding")
    if min(s_h, s_w) < 1 or min(pad_h, pad_w, out_pad_h, out_pad_w) < 0:
        raise ValueError(f"stride must be positive and padding, output_padding >= 0, got stride {(s_h, s_w)}, "
                         f"padding {(pad_h, pad_w)}, output_padding {(out_pad_h, out_pad_w)}")
    if out_pad_h >= s_h or out_pad_w >= s_w:
        raise ValueError(f"output_padding {(out_pad_h, out_pad_w)} must be smaller than the stride {(s_h, s_w)}")
    N, _, H, W = X.shape
    C_o, k_h, k_w = K.shape[1:]
    full_h, full_w = (H - 1) * s_h + k_h + out_pad_h, (W - 1) * s_w + k_w + out_pad_w
    if full_h - 2 * pad_h < 1 or full_w - 2 * pad_w < 1:
        raise ValueError(f"padding {(pad_h, pad_w)} removes the whole {full_h}x{full_w} output of a {H}x{W} input; "
                         "use less padding")
    Y = torch.zeros(N, C_o, full_h, full_w, dtype=torch.result_type(X, K), device=X.device)
    for a in range(k_h):
        for b in range(k_w):
            rows, cols = slice(a, a + (H - 1) * s_h + 1, s_h), slice(b, b + (W - 1) * s_w + 1, s_w)
            Y[:, :, rows, cols] += torch.einsum("nchw,co->nohw", X, K[:, :, a, b])  # (N, C_o, H, W)
    Y = Y[:, :, pad_h:full_h - pad_h, pad_w:full_w - pad_w]  # (N, C_o, H', W')
    return Y if bias is None else Y + bias.reshape(1, -1, 1, 1)


def kernel_to_matrix(K: torch.Tensor, in_hw: IntPair, padding: IntPair = 0, stride: IntPair = 1) -> torch.Tensor:
    """The matrix W of the convolution by a 2-D kernel K on an in_hw image (book 14.10.4).

    conv2d(X, K, padding, stride).flatten() == W @ X.flatten(), with W of shape (H' W', H W):
    row i W' + j holds the kernel at the pixels its window covers,

        W[(i, j), (i*s_h + a - pad_h, j*s_w + b - pad_w)] = K[a, b],

    dropping entries that fall on the zero padding. The transposed convolution by the same
    kernel (same stride and padding) is multiplication by W.T, mapping (H', W') back to (H, W):
    that is where its name comes from, and why it is the gradient of the convolution w.r.t. X.
    """
    _check_dim(K, 2, "K", "(h, w)")
    H, W = _pair(in_hw, "in_hw")
    (pad_h, pad_w), (s_h, s_w) = _pair(padding, "padding"), _pair(stride, "stride")
    H_o, W_o = conv_output_shape((H, W), K.shape, (pad_h, pad_w), (s_h, s_w))
    k_h, k_w = K.shape
    i = torch.arange(H_o, device=K.device).reshape(-1, 1, 1, 1)
    j = torch.arange(W_o, device=K.device).reshape(1, -1, 1, 1)
    a = torch.arange(k_h, device=K.device).reshape(1, 1, -1, 1)
    b = torch.arange(k_w, device=K.device).reshape(1, 1, 1, -1)
    M = K.new_zeros(H_o, W_o, H + 2 * pad_h, W + 2 * pad_w)  # one padded image per output pixel
    M[i, j, i * s_h + a, j * s_w + b] = K  # indices broadcast to (H', W', k_h, k_w)
    M = M[:, :, pad_h:pad_h + H, pad_w:pad_w + W]  # drop the padding: it only ever multiplies zeros
    return M.reshape(H_o * W_o, H * W)
