"""Helpers shared by test modules (importable as `helpers`: pytest puts tests/ on sys.path for its conftest)."""

import json

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
