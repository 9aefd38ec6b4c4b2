"""Helpers shared by test modules (importable as `helpers`: pytest puts tests/ on sys.path for its conftest;
benchmarks/variants_parity.py puts tests/ on sys.path itself)."""

import functools
import gzip
import http.server
import json
import struct
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def last_json(out: str) -> dict:
    """The JSON object a `--json` verb prints as the last line of stdout."""
    return json.loads(out.strip().splitlines()[-1])


def forward_backward(f, *inputs, seed: int = 1) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(f(*inputs), the gradients w.r.t. every input of a random weighting of the output), on fresh leaf copies.

    The weighting is random rather than all ones, so a transposed gradient shows; it depends only on
    `seed` and the output's shape, so two functions called with the same seed get the same one.
    """
    xs = [x.detach().clone().requires_grad_() for x in inputs]
    y = f(*xs)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype).to(y.device)
    return y, torch.autograd.grad((y * weights).sum(), xs)


def assert_same_forward_backward(ours, theirs, *inputs, **tolerances):
    """ours(*inputs) equals theirs(*inputs), and so do the gradients w.r.t. every input of a random
    weighting of the output. `tolerances` (atol, rtol) go to torch.testing.assert_close; a nan never
    compares equal."""
    (y_a, g_a), (y_b, g_b) = forward_backward(ours, *inputs), forward_backward(theirs, *inputs)
    torch.testing.assert_close(y_a, y_b, **tolerances, msg=lambda m: f"output: {m}")
    for i, (a, b) in enumerate(zip(g_a, g_b)):
        torch.testing.assert_close(a, b, **tolerances, msg=lambda m, i=i: f"gradient w.r.t. input {i}: {m}")


def max_abs_differences(ours, theirs, *inputs) -> tuple[float, float, float]:
    """The numbers behind assert_same_forward_backward: the largest |ours - theirs| of the outputs and
    of the gradients, and the largest |gradient| of theirs, the scale to read the second against."""
    (y_a, g_a), (y_b, g_b) = forward_backward(ours, *inputs), forward_backward(theirs, *inputs)
    return ((y_a - y_b).abs().max().item(), max((a - b).abs().max().item() for a, b in zip(g_a, g_b)),
            max(b.abs().max().item() for b in g_b))


def as_function(module: nn.Module):
    """`module` as f(X, *params) with its parameters (in .parameters() order) as inputs, so the helpers
    above compare the gradients of the parameters too. The module runs in its current mode and still
    updates its own buffers (running statistics)."""
    names = [name for name, _ in module.named_parameters()]

    def f(X, *params):
        return torch.func.functional_call(module, dict(zip(names, params)), (X,))

    return f


def assert_same_modules(ours: nn.Module, theirs: nn.Module, X: torch.Tensor, **tolerances):
    """ours(X) equals theirs(X), and so do the gradients w.r.t. X and every parameter. The two must
    hold the same parameter values in the same order and shapes (ours' are used for both)."""
    params = [p.detach() for p in ours.parameters()]
    assert_same_forward_backward(as_function(ours), as_function(theirs), X, *params, **tolerances)


def input_patch(net: nn.Module, size: int, i: int, j: int) -> tuple[int, int, int, int]:
    """(first row, rows, first column, columns) of the size x size one-channel input on which
    channel 0 of output pixel (i, j) depends: where its gradient is non-zero."""
    X = torch.ones(1, 1, size, size, requires_grad=True)
    net(X)[0, 0, i, j].backward()
    rows, cols = X.grad[0, 0].abs().sum(1).nonzero(), X.grad[0, 0].abs().sum(0).nonzero()
    return int(rows.min()), int(rows.max() - rows.min() + 1), int(cols.min()), int(cols.max() - cols.min() + 1)


def idx_bytes(array) -> bytes:
    """`array` as an idx file (MNIST's format): a big-endian header (0, 0, type 0x08 = uint8, ndim),
    the shape as big-endian uint32s, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array, gz: bool = True) -> Path:
    """Write `array` as an idx file at `path`, gzipped like MNIST's and Fashion-MNIST's (or not)."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files like SimpleHTTPRequestHandler, without a log line per request."""

    def log_message(self, *args):
        """Keep the test output quiet."""


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port, at `url`) serving `folder` with `handler`,
    in a daemon thread, for download tests without the internet."""

    def __init__(self, folder: Path, handler: type[http.server.SimpleHTTPRequestHandler] = QuietHandler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def stop(self):
        """Shut the server down (once; a second call does nothing)."""
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
            self.httpd.server_close()
