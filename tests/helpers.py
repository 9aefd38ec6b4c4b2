"""Helpers shared by test modules (importable as `helpers`: pytest puts tests/ on sys.path for its conftest)."""

import functools
import gzip
import http.server
import json
import struct
import threading
from pathlib import Path

import numpy as np
import torch


def last_json(out: str) -> dict:
    """The JSON object a `--json` verb prints as the last line of stdout."""
    return json.loads(out.strip().splitlines()[-1])


def assert_same_forward_backward(ours, theirs, *inputs):
    """ours(*inputs) equals theirs(*inputs), and so do the gradients w.r.t. every input of a random
    weighting of the output (random rather than all ones, so a transposed gradient shows)."""
    a = [x.detach().clone().requires_grad_() for x in inputs]
    b = [x.detach().clone().requires_grad_() for x in inputs]
    y_a, y_b = ours(*a), theirs(*b)
    torch.testing.assert_close(y_a, y_b)
    weights = torch.randn(y_a.shape, generator=torch.Generator().manual_seed(1), dtype=y_a.dtype)
    for g_a, g_b in zip(torch.autograd.grad((y_a * weights).sum(), a), torch.autograd.grad((y_b * weights).sum(), b)):
        torch.testing.assert_close(g_a, g_b)


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
