"""Layer-by-layer model summary: output shape, window, receptive field, parameters and multiply-adds of every layer.

The book walks a model by hand, `for layer in net: X = layer(X); print(layer.__class__.__name__,
'output shape:', X.shape)`. `summary` does the same for any model, nested blocks included: it runs
one example through the model with a forward hook on every leaf module (and every module holding
parameters of its own) and records, in call order:

    name          the module's name in the model ('0', 'b2.0.conv1')
    type          its class name ('Conv2d')
    output_shape  the shape of its output for a batch of one, as the book prints it
    params        the number of parameters it holds itself (a module called twice counts them once)
    macs          multiply-adds per example
    config        for a convolution or pooling layer, its window: kernel k, stride s, padding p,
                  dilation d and groups g ('k5x5 s1 p2 d1 g1'); '' for other layers. The table
                  (format_summary) shows this text; the JSON rows carry it as `window`, a dict
                  {kernel, stride, padding, dilation, groups} of per-axis lists (None elsewhere).
    receptive_field, jump
                  for a convolution or pooling layer, the receptive field and jump of its output
                  relative to the model's input (see below), one entry per axis ('r16 j4' in the table);
                  None elsewhere, and where they cannot be followed.

Multiply-adds count the products of the matrix and convolution layers and one per output element
of batch normalization (in eval mode it is y = a * x + b per element):

    Conv2d            out_elements * (in_channels / groups) * kh * kw
    ConvTranspose2d   in_elements * (out_channels / groups) * kh * kw
    Linear            out_elements * in_features
    BatchNorm         out_elements
    anything else     0 (activations, pooling, dropout, flatten: comparisons and additions,
                      a small share of the work)

Biases are not counted. Operations a model does in its forward() outside any module (the
addition of a residual block, the concatenation of a dense block) do not appear.

Receptive field and jump follow divekit.ops.conv.receptive_field along the order the layers run:
one output pixel of the layer depends on an r x r patch of the input, and neighbouring output
pixels are j input pixels apart (j is the product of the strides so far). That recurrence holds
for a chain, each layer fed the previous one's output, and so the summary follows it only while
the layers form one: from the first layer whose input is not the previous layer's output (a
branch of an Inception block, a residual block's shortcut or a dense block's concatenation, or
any operation done outside a module, such as the F.relu of a ResNet block), no receptive field is
shown, and the summary names that layer (`chain_ends_at`). Computing the field per path through
the branches would need the data flow between modules, which forward hooks do not see. So LeNet,
AlexNet, VGG and NiN get a value for every convolution and pooling layer, and ResNet, GoogLeNet
and DenseNet only for their stem and the first layer after it. Besides convolutions and pooling
layers (2-d, not transposed) the chain passes only through layers that act on each position
alone: activations, dropout and normalizations (taken as pointwise, as the receptive field
conventionally is, although the statistics of layer, group and instance normalization draw on
every position). Any other layer (flatten, linear, adaptive pooling, a transposed convolution)
ends it: its output positions no longer correspond to input patches. As in receptive_field,
padding is ignored, so in a deep net the field can be larger than the input: part of it falls on
the padding.
"""

from __future__ import annotations

import json as json_lib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..core.errors import ConfigError
from ..ops.conv import receptive_field
from .layers import ACTIVATION_LAYERS, SCRATCH_ACTIVATION_LAYERS, BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from .registry import MODELS, create_model


@dataclass
class LayerRow:
    """One called module: its name, class, output shape (batch of one), own parameters and multiply-adds;
    for a convolution or pooling layer its window, and its receptive field and jump where they are followed."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    config: str = ""
    window: dict[str, Any] | None = field(default=None, repr=False)
    receptive_field: list[int] | None = None  # (r_h, r_w) input pixels
    jump: list[int] | None = None  # (j_h, j_w) input pixels between neighbouring outputs


@dataclass
class Summary:
    """The rows in call order, the model's parameter count and the total multiply-adds per example.

    chain_ends_at names the layer from which the receptive field is no longer followed, when a
    convolution or pooling layer comes at or after it (None when every one has its field).
    """

    rows: list[LayerRow]
    total_params: int  # every parameter of the model, counted once
    total_macs: int
    chain_ends_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [{**_json_row(r), "output_shape": list(r.output_shape) if r.output_shape else None}
                       for r in self.rows],
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "chain_ends_at": self.chain_ends_at,
        }


def _json_row(r: LayerRow) -> dict[str, Any]:
    row = asdict(r)
    del row["config"]  # the text form; JSON gets the same settings as numbers (window)
    row["window"] = r.window
    return row


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
# layers through which the receptive field and jump pass unchanged (see the module docstring)
_POINTWISE = (*ACTIVATION_LAYERS.values(), *SCRATCH_ACTIVATION_LAYERS.values(), nn.Identity,
              nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
              nn.GroupNorm, nn.LayerNorm, BatchNorm, GroupNorm, InstanceNorm, LayerNorm)


def _per_axis(value: Any, dims: int) -> Any:
    """5 -> [5, 5] for a 2-d layer, (3, 5) -> [3, 5]; a padding string such as 'same' as it is."""
    if isinstance(value, str):
        return value
    return list(value) if isinstance(value, (tuple, list)) else [value] * dims


def _axes_text(value: list[int] | str) -> str:
    """A per-axis list as text: [3, 5] -> '3x5', [2, 2] -> '2'; a padding string such as 'same' as it is."""
    if isinstance(value, str):
        return value
    return str(value[0]) if len(set(value)) == 1 else "x".join(map(str, value))


def layer_window(module: nn.Module) -> dict[str, Any] | None:
    """A convolution's or pooling layer's window as numbers: {kernel, stride, padding, dilation,
    groups}, each a list with one entry per spatial axis (groups an int; pooling has no groups, and
    dilation only for max pooling). None for other layers."""
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        return {"kernel": list(module.kernel_size), "stride": _per_axis(module.stride, dims),
                "padding": _per_axis(module.padding, dims), "dilation": _per_axis(module.dilation, dims),
                "groups": module.groups}
    if isinstance(module, _POOLS):
        dims = int(type(module).__name__[-2])  # MaxPool2d -> 2
        window = {"kernel": _per_axis(module.kernel_size, dims), "stride": _per_axis(module.stride, dims),
                  "padding": _per_axis(module.padding, dims)}
        if hasattr(module, "dilation"):
            window["dilation"] = _per_axis(module.dilation, dims)
        return window
    return None


def layer_config(module: nn.Module) -> str:
    """A convolution's or pooling layer's window as 'k3x3 s1 p1 d1 g1' (kernel, stride, padding,
    dilation, groups; pooling has no groups, and dilation only for max pooling); '' for other layers."""
    window = layer_window(module)
    if window is None:
        return ""
    text = f"k{'x'.join(map(str, window['kernel']))} s{_axes_text(window['stride'])} p{_axes_text(window['padding'])}"
    if "dilation" in window:
        text += f" d{_axes_text(window['dilation'])}"
    if "groups" in window:
        text += f" g{window['groups']}"
    return text


def _output_shape(out: Any) -> tuple[int, ...] | None:
    # a module may return a tuple (e.g. an RNN's output and state): report the first tensor
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    return tuple(out.shape) if isinstance(out, torch.Tensor) else None


def layer_macs(module: nn.Module, inputs: tuple, out: Any) -> int:
    """Multiply-adds per example of one call of `module` (see the module docstring for the rules)."""
    if not isinstance(out, torch.Tensor) or out.dim() == 0:
        return 0
    batch = out.shape[0]
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            return inputs[0].numel() // batch * (module.out_channels // module.groups) * kernel
        return out.numel() // batch * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return out.numel() // batch * module.in_features
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, BatchNorm)):
        return out.numel() // batch
    return 0


class _FieldTracker:
    """Follows the receptive field and jump along the layers as they run, while they form a chain.

    Called with every leaf module's call in order: `step` returns ([r_h, r_w], [j_h, j_w]) for a 2-d
    convolution or pooling layer whose input is the previous layer's output, else (None, None); once
    a layer's input is something else, or a layer is neither windowed nor pointwise, it stops.
    """

    def __init__(self, X: torch.Tensor):
        self.previous: Any = X  # the tensor the next layer of the chain must take
        self.windows: list[tuple[list[int], list[int], list[int]]] = []  # (kernel, stride, dilation) so far
        self.stopped_at: str | None = None
        self.chain_ends_at: str | None = None  # stopped_at, once a windowed layer came after it

    def step(self, name: str, module: nn.Module, inputs: tuple, out: Any,
             window: dict[str, Any] | None) -> tuple[list[int] | None, list[int] | None]:
        windowed = window is not None and len(window["kernel"]) == 2 and not getattr(module, "transposed", False)
        if self.stopped_at is None and not (inputs and inputs[0] is self.previous
                                            and (windowed or isinstance(module, _POINTWISE))):
            self.stopped_at = name
        if self.stopped_at is not None:
            if window is not None and self.chain_ends_at is None:
                self.chain_ends_at = self.stopped_at
            return None, None
        self.previous = out
        if not windowed:
            return None, None
        self.windows.append((window["kernel"], window["stride"], window.get("dilation", [1, 1])))
        r, j = receptive_field(self.windows)
        return list(r), list(j)


def summary(model: nn.Module, input_shape: Sequence[int]) -> Summary:
    """Run one example of shape input_shape (e.g. (1, 28, 28)) through `model` and summarize each layer.

    The model runs in eval mode (batch norm cannot use the statistics of a batch of one) and
    without gradients; its mode is restored afterwards. A model that cannot take the shape raises
    the RuntimeError of its forward pass.
    """
    rows: list[LayerRow] = []
    counted: set[int] = set()
    names = {id(m): name for name, m in model.named_modules()}
    device = next(model.parameters(), torch.empty(0)).device
    X = torch.zeros(1, *input_shape, device=device)
    fields = _FieldTracker(X)

    def hook(module, inputs, out):
        own = 0
        if id(module) not in counted:
            counted.add(id(module))
            own = sum(p.numel() for p in module.parameters(recurse=False))
        name, window = names[id(module)] or type(module).__name__, layer_window(module)
        # a module with children as well as parameters has run its children: it is no link of the chain
        rf, jump = fields.step(name, module, inputs, out, window) if not list(module.children()) else (None, None)
        rows.append(LayerRow(name, type(module).__name__, _output_shape(out), own, layer_macs(module, inputs, out),
                             layer_config(module), window, rf, jump))

    watched = [m for m in model.modules() if not list(m.children()) or list(m.parameters(recurse=False))]
    handles = [m.register_forward_hook(hook) for m in watched]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    total_params = sum(p.numel() for p in model.parameters())
    return Summary(rows, total_params, sum(r.macs for r in rows), fields.chain_ends_at)


def format_summary(s: Summary) -> str:
    """The summary as the book's walk, one line per layer ('Conv2d output shape: (1, 6, 28, 28)'),
    with the layer's name in front and its window (kernel, stride, padding, dilation, groups),
    receptive field and jump ('r16 j4'), parameters and multiply-adds behind, then the totals
    and, where the layers stop forming a chain, from which layer on no receptive field is shown."""
    described = [(r.name, f"{r.type} output shape: {r.output_shape}", r.config,
                  f"r{_axes_text(r.receptive_field)} j{_axes_text(r.jump)}" if r.receptive_field else "",
                  f"{r.params:,}", f"{r.macs:,}") for r in s.rows]
    header = ("layer", "", "window", "receptive field", "params", "MACs")
    footer = ("total", "", "", "", f"{s.total_params:,}", f"{s.total_macs:,}")
    widths = [max(len(row[i]) for row in [header, *described, footer]) for i in range(6)]

    def line(row):
        return (f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]:<{widths[3]}}  "
                f"{row[4]:>{widths[4]}}  {row[5]:>{widths[5]}}").rstrip()

    rule = "-" * (sum(widths) + 10)
    lines = [line(header), rule, *map(line, described), rule, line(footer)]
    if s.chain_ends_at is not None:
        lines.append(f"receptive field: not followed from {s.chain_ends_at} on, where the layers stop forming one "
                     "chain of convolutions, pooling and pointwise layers (a branch, an operation outside any "
                     "module, or another kind of layer)")
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28); ConfigError naming the option if it is not positive integers."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"--input-shape must be positive integers C,H,W such as 1,28,28; got {text!r}")
    return shape


def summary_main(model_name: str, input_shape: str | None = None, json: bool = False) -> int:
    """`divekit summary MODEL [--input-shape C,H,W] [--json]`: print a model's layer-by-layer summary.

    The model is built for 10 classes and the given input shape; without one, for 1-channel images
    at the model's default --resize (e.g. 224 for alexnet), else 28x28. With json, prints
    one JSON object {model, input_shape, layers, total_params, total_macs, chain_ends_at} on the last line.
    Returns the exit status.
    """
    entry = MODELS.get(model_name)  # ConfigError with suggestions for an unknown name
    if input_shape is None:
        size = entry.defaults.get("resize") or 28
        shape: tuple[int, ...] = (1, size, size)
    else:
        shape = parse_shape(input_shape)
    model = create_model(model_name, context={"num_classes": 10, "in_shape": shape})
    latent = getattr(model, "latent_dim", None)  # a GAN generates `shape` and runs D(G(z)) on noise z
    run_shape = (latent,) if isinstance(latent, int) else shape
    try:
        s = summary(model, run_shape)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"model {model_name!r} cannot take inputs of shape {shape}: {str(e).splitlines()[0]}. "
            "Choose another --input-shape."
        ) from None
    if json:
        print(json_lib.dumps({"model": model_name, "input_shape": list(run_shape), **s.to_dict()}))
    else:
        print(f"{model_name} for inputs of shape {run_shape}" + (f" (noise; it generates {shape})" if latent else ""))
        print(format_summary(s))
    return 0
