"""Speed switches: `divekit bench`, torch.compile's untimed warm-up, foreach/fused optimizers."""

import json

import pytest
import torch
from torch import nn

from divekit.apps.bench import bench, format_table, overrides_of
from divekit.cli import main
from divekit.core.errors import ConfigError
from divekit.data.registry import tensor_bundle
from divekit.ops.optim import build_optimizer
from divekit.train.api import fit
from divekit.train.config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_bench_measures_every_switch_with_hardware_and_speedups():
    switches = "fp32,bf16,channels_last,foreach,fused,bf16+channels_last"
    result = bench("lenet", steps=1, repeats=2, warmup=1, batch_size=8, switches=switches)
    assert result["synthetic"] and result["data"] == "fashion-mnist" and result["input_shape"] == [1, 28, 28]
    assert [r["switch"] for r in result["results"]] == switches.split(",")
    for r in result["results"]:
        assert "error" not in r, r
        assert r["train_per_s"] > 0 and r["infer_per_s"] > 0 and r["train_std"] >= 0
    assert result["results"][0]["train_speedup"] == 1.0
    hw = result["hardware"]
    assert hw["torch"] == torch.__version__ and hw["cores"] >= 1 and hw["cpu"]
    json.dumps(result)
    table = format_table(result)
    assert "bf16+channels_last" in table and "± " in table and "ex/s" in table


def test_bench_command_prints_json_last(capsys):
    assert main(["bench", "softmax-regression", "--data", "digits", "--steps", "2", "--repeats", "1", "--warmup", "0",
                 "--switches", "fp32,foreach", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not out["synthetic"] and out["input_shape"] == [1, 8, 8] and out["batch_size"] == 64
    assert [r["switch"] for r in out["results"]] == ["fp32", "foreach"]


def test_bench_default_switches_and_errors():
    result = bench("softmax-regression", steps=1, repeats=1, warmup=0, batch_size=4)
    names = [r["switch"] for r in result["results"]]
    assert names[:2] == ["fp32", "bf16"] and "channels_last" in names and "compile" not in names
    assert ("fp16" in names) == torch.cuda.is_available()
    with pytest.raises(ConfigError, match="unknown switch 'bf61'"):
        bench("lenet", switches="bf61")
    with pytest.raises(ConfigError, match="channels_last applies to image batches"):
        bench("linear-regression", data="synthetic-linear", switches="channels_last")
    with pytest.raises(ConfigError, match="--data time-machine"):
        bench("rnn", steps=1)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
            bench("softmax-regression", steps=1, repeats=1, switches="fp16")
    assert overrides_of("bf16+channels_last") == {"precision": "bf16", "channels_last": True}


def _toy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 6, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    return tensor_bundle("toy", "classification", X[:48], y[:48], X[48:], y[48:], batch_size=8, classes=["n", "p"])


def _net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))


def test_compile_warm_up_is_untimed_and_leaves_the_run_unchanged(monkeypatch):
    """With torch.compile (its eager backend here: the same arithmetic, no compiler needed), the
    warm-up forward/backward must not change batch-norm statistics, random state or weights."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend="eager"))
    cfg = TrainConfig(epochs=2, lr=0.1, batch_size=8, device="cpu")
    plain = fit(_net(), _toy(), cfg, run_dir=False, progress=False)
    compiled = fit(_net(), _toy(), cfg.replace(compile=True), run_dir=False, progress=False)
    assert type(compiled.model).__name__ != "OptimizedModule"  # the plain module comes back (checkpoint keys)
    for (k, a), b in zip(plain.model.state_dict().items(), compiled.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=k)
    assert compiled.history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"], rel=1e-5)


def test_optimizer_implementations():
    params = [nn.Parameter(torch.randn(3))]
    assert build_optimizer("sgd", params, lr=0.1, impl="foreach").param_groups[0]["foreach"] is True
    assert build_optimizer("sgd", params, lr=0.1, impl="for-loop").param_groups[0]["foreach"] is False
    assert build_optimizer("adam", params, lr=0.1, impl="fused").param_groups[0]["fused"] is True
    assert build_optimizer("adam", params, lr=0.1).param_groups[0]["foreach"] is None  # auto: torch decides
    with pytest.raises(ConfigError, match="no fused implementation"):
        build_optimizer("adadelta", params, lr=0.1, impl="fused")
    with pytest.raises(ConfigError, match="from-scratch"):
        build_optimizer("adam-scratch", params, lr=0.1, impl="foreach")
    with pytest.raises(ConfigError, match="--optimizer-impl"):
        TrainConfig(optimizer_impl="fast").validate()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_foreach_and_fused_train_like_the_for_loop(optimizer):
    cfg = TrainConfig(epochs=1, lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0, batch_size=8, device="cpu",
                      optimizer=optimizer)
    def net():  # no batch norm: the bias before it gets ~0 gradients, which Adam's g / sqrt(v) turns into noise
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))

    runs = {impl: fit(net(), _toy(), cfg.replace(optimizer_impl=impl), run_dir=False, progress=False).model.state_dict()
            for impl in ("for-loop", "foreach", "fused")}
    for impl in ("foreach", "fused"):
        for k, v in runs["for-loop"].items():
            torch.testing.assert_close(runs[impl][k], v, rtol=1e-5, atol=1e-6, msg=f"{impl} {k}")
