"""The from-scratch activations, normalizations and convolution variants against torch: the largest
absolute difference of the output and of every gradient, in float32 and float64.

    python benchmarks/variants_parity.py            # prints a Markdown table; the last line is JSON

Each op runs on a random (N, C, H, W) = (8, 16, 14, 14) input scaled by 3 (so the activations see
both sides and their tails), the same parameters in both implementations (random scales and
shifts for the normalizations), and the gradient is that of sum(output * W) for a random W, taken
with respect to the input and every parameter; the last column is the largest gradient entry,
the scale to read the backward differences against (a convolution's weight gradient sums
N H' W' products). Normalizations are compared in training mode and,
after two training steps, in evaluation mode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from common import hardware  # benchmarks/common.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import as_function, max_abs_differences  # noqa: E402  (tests/helpers.py)

from divekit.models import layers  # noqa: E402
from divekit.ops import activations as act  # noqa: E402
from divekit.ops.conv import conv2d  # noqa: E402

SHAPE = (8, 16, 14, 14)


def module_diff(ours: nn.Module, theirs: nn.Module, X: torch.Tensor, train: bool) -> tuple[float, float, float]:
    """max_abs_differences of two modules holding the same values, w.r.t. the input and their parameters, in one
    mode: the largest difference of the outputs, of the gradients, and the largest gradient of torch's."""
    ours.train(train), theirs.train(train)
    return max_abs_differences(as_function(ours), as_function(theirs), X, *(p.detach() for p in ours.parameters()))


def norm_pair(kind: str, dtype) -> tuple[nn.Module, nn.Module]:
    c = SHAPE[1]
    ours, theirs = {
        "LayerNorm over (C, H, W)": (layers.LayerNorm(SHAPE[1:]), nn.LayerNorm(SHAPE[1:])),
        "GroupNorm, 4 groups": (layers.GroupNorm(4, c), nn.GroupNorm(4, c)),
        "InstanceNorm (affine)": (layers.InstanceNorm(c, affine=True), nn.InstanceNorm2d(c, affine=True)),
        "InstanceNorm (affine, running stats)": (layers.InstanceNorm(c, affine=True, track_running_stats=True),
                                                 nn.InstanceNorm2d(c, affine=True, track_running_stats=True)),
    }[kind]
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=dtype) + 0.5)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def rows(dtype) -> dict[str, tuple[float, float, float]]:
    g = torch.Generator().manual_seed(0)
    X = 3 * torch.randn(SHAPE, generator=g, dtype=dtype)
    out: dict[str, tuple[float, float, float]] = {
        "leaky_relu": max_abs_differences(act.leaky_relu, F.leaky_relu, X),
        "elu": max_abs_differences(act.elu, F.elu, X),
        "selu": max_abs_differences(act.selu, F.selu, X),
        "prelu (one slope per channel)": max_abs_differences(act.prelu, F.prelu, X,
                                                             torch.rand(SHAPE[1], generator=g, dtype=dtype)),
        "gelu": max_abs_differences(act.gelu, F.gelu, X),
        "gelu (tanh approximation)": max_abs_differences(lambda x: act.gelu(x, "tanh"),
                                                         lambda x: F.gelu(x, approximate="tanh"), X),
        "silu": max_abs_differences(act.silu, F.silu, X),
    }
    for kind in ("LayerNorm over (C, H, W)", "GroupNorm, 4 groups", "InstanceNorm (affine)",
                 "InstanceNorm (affine, running stats)"):
        ours, theirs = norm_pair(kind, dtype)
        out[f"{kind}, train"] = module_diff(ours, theirs, X, train=True)
        for _ in range(2):  # move the running statistics (where there are any)
            ours.train(), theirs.train()
            with torch.no_grad():
                ours(X + 1), theirs(X + 1)
        out[f"{kind}, eval"] = module_diff(ours, theirs, X, train=False)
    K = torch.randn(32, 4, 3, 3, generator=g, dtype=dtype)  # 16 input channels in 4 groups of 4
    b = torch.randn(32, generator=g, dtype=dtype)
    convs = {
        "conv2d dilation 2, padding 2": (dict(padding=2, dilation=2),
                                         torch.randn(32, 16, 3, 3, generator=g, dtype=dtype)),
        "conv2d groups 4": (dict(padding=1, groups=4), K),
        "conv2d dilation (2, 3), stride 2, groups 4": (dict(padding=(1, 2), stride=2, dilation=(2, 3), groups=4), K),
        "conv2d depthwise (groups 16)": (dict(padding=1, groups=16),
                                         torch.randn(16, 1, 3, 3, generator=g, dtype=dtype)),
    }
    for name, (kw, W) in convs.items():
        bias = b[:W.shape[0]]
        out[name] = max_abs_differences(lambda X, W, bias: conv2d(X, W, bias, **kw),
                                        lambda X, W, bias: F.conv2d(X, W, bias, **kw), X, W, bias)
    Kd, Kp = torch.randn(16, 1, 3, 3, generator=g, dtype=dtype), torch.randn(32, 16, 1, 1, generator=g, dtype=dtype)
    out["depthwise-separable (3x3 depthwise, 1x1)"] = max_abs_differences(
        lambda X, Kd, Kp: conv2d(conv2d(X, Kd, padding=1, groups=16), Kp),
        lambda X, Kd, Kp: F.conv2d(F.conv2d(X, Kd, padding=1, groups=16), Kp), X, Kd, Kp)
    return out


def main() -> None:
    torch.set_num_threads(1)
    print(hardware())
    results = {str(dtype).removeprefix("torch."): rows(dtype) for dtype in (torch.float32, torch.float64)}
    print()
    print("| op (ours vs torch) | forward, float32 | backward, float32 | forward, float64 | backward, float64 "
          "| largest abs gradient |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in results["float32"]:
        (f32, b32, _), (f64, b64, scale) = results["float32"][name], results["float64"][name]
        print(f"| {name} | {f32:.1e} | {b32:.1e} | {f64:.1e} | {b64:.1e} | {scale:.1f} |")
    print(json.dumps({"hardware": hardware(), "input_shape": SHAPE, "max_abs_diff": results}))


if __name__ == "__main__":
    main()
