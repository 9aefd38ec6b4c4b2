import pytest
import torch

from divekit.core.device import best_device, num_gpus, resolve_device, to_device
from divekit.core.errors import ConfigError


def test_best_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert best_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert best_device() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert best_device() == torch.device("cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if num_gpus() == 0:
        assert resolve_device("auto") in (torch.device("cpu"), torch.device("mps"))
        with pytest.raises(ConfigError, match="0 CUDA GPU"):
            resolve_device("cuda:0")


def test_to_device_moves_nested_batches():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.zeros(3)]), "n": 5}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["n"] == 5 and isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert all(t.device.type == "cpu" for t in (moved["x"], moved["pair"][0], moved["pair"][1][0]))
