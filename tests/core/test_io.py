"""Saving and loading with safetensors: exact round trips, model clones, tied weights, refused pickles."""

import json
import os
import pickle

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

import divekit.core.io as dio
from divekit.core.errors import DivekitError
from divekit.core.io import load, load_params, save, save_params
from divekit.models.blocks import MLP, FixedHiddenMLP, tied_mlp


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert list(a) == list(b)  # same keys in the same order
        for k in a:
            assert_same(a[k], b[k])


def some_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(2, generator=g, dtype=torch.float64),
        "i64": torch.tensor([-(2**62), 0, 2**62 + 1]),
        "bool": torch.tensor([[True, False], [False, True]]),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(5, generator=g).bfloat16(),
        "u8": torch.arange(256, dtype=torch.uint8),
        "scalar": torch.tensor(3.5),
    }


def test_tensor_round_trip(tmp_path):
    for name, x in some_tensors().items():
        path = save(x, tmp_path / f"{name}.safetensors")
        assert_same(load(path), x)


def test_list_round_trip_keeps_order(tmp_path):
    xs = list(some_tensors().values()) + [torch.full((2,), float(i)) for i in range(8)]  # 16: '10' sorts before '2'
    assert_same(load(save(xs, tmp_path / "x-files")), xs)


def test_tuple_comes_back_as_list(tmp_path):
    x, y = torch.arange(4), torch.zeros(4)
    assert_same(load(save((x, y), tmp_path / "t")), [x, y])


def test_dict_round_trip_nested_and_ordered(tmp_path):
    layer = {"weight": torch.eye(2), "bias": torch.zeros(2)}
    d = {"zeta": torch.ones(1), **some_tensors(), "layer": layer, "xs": [torch.arange(3)]}
    path = save(d, tmp_path / "mydict")
    assert_same(load(path), d)
    # other tools see dotted names
    names = set(load_file(str(path)))
    assert {"layer.weight", "layer.bias", "xs.0", "zeta"} <= names


def test_dotted_keys_stay_flat(tmp_path):
    d = {"0.weight": torch.ones(2, 2), "0.bias": torch.zeros(2)}
    assert_same(load(save(d, tmp_path / "flat")), d)


def test_empty_containers_round_trip(tmp_path):
    assert load(save([], tmp_path / "a")) == []
    assert_same(load(save({"a": {}, "b": torch.ones(1)}, tmp_path / "b")), {"a": {}, "b": torch.ones(1)})


def test_clashing_names_are_refused(tmp_path):
    with pytest.raises(DivekitError, match="rename"):
        save({"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}}, tmp_path / "x")


@pytest.mark.parametrize("obj", [{"a": 1.0}, {1: torch.ones(1)}, [torch.ones(1), "text"], 3])
def test_non_tensor_content_is_refused(tmp_path, obj):
    with pytest.raises(DivekitError, match="cannot save"):
        save(obj, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_saved_views_and_shared_tensors(tmp_path):
    base = torch.arange(12).reshape(3, 4)
    xs = [base, base, base.t(), base[1]]  # the same storage four times, two of them non-contiguous views
    assert_same(load(save(xs, tmp_path / "v")), [base, base, base.t().contiguous(), base[1].clone()])


def test_foreign_safetensors_file_loads_as_flat_dict(tmp_path):
    d = {"a.b": torch.ones(2), "c": torch.arange(3)}
    save_file(d, str(tmp_path / "other.safetensors"))
    loaded = load(tmp_path / "other.safetensors")
    assert_same(dict(sorted(loaded.items())), dict(sorted(d.items())))


def test_model_clone_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = MLP(20)
    X = torch.randn(2, 20)
    save_params(net, tmp_path / "mlp.params")
    torch.manual_seed(1)
    clone = MLP(20)
    assert not torch.equal(clone(X), net(X))
    assert load_params(clone, tmp_path / "mlp.params") is clone
    assert torch.equal(clone(X), net(X))
    lazy = MLP()  # a lazy clone takes the saved shapes
    load_params(lazy, tmp_path / "mlp.params")
    assert torch.equal(lazy(X), net(X))


def test_buffers_travel_with_the_params(tmp_path):
    net = FixedHiddenMLP(generator=torch.Generator().manual_seed(0))
    X = torch.randn(2, 20)
    save_params(net, tmp_path / "fixed")
    clone = load_params(FixedHiddenMLP(generator=torch.Generator().manual_seed(1)), tmp_path / "fixed")
    assert torch.equal(clone.rand_weight, net.rand_weight)
    assert torch.equal(clone(X), net(X))


def test_tied_parameters_survive(tmp_path):
    torch.manual_seed(0)
    net = tied_mlp()
    path = save_params(net, tmp_path / "tied")
    assert {"2.weight", "4.weight"} <= set(load_file(str(path)))
    clone = tied_mlp()
    load_params(clone, path)
    assert clone[2].weight is clone[4].weight
    assert torch.equal(clone[2].weight, net[2].weight)
    X = torch.randn(3, 20)
    assert torch.equal(clone(X), net(X))


def test_params_of_another_model_are_refused(tmp_path):
    save_params(MLP(20, num_hiddens=32), tmp_path / "small")
    with pytest.raises(DivekitError, match="hidden.weight"):
        load_params(MLP(20), tmp_path / "small")
    with pytest.raises(DivekitError, match="missing"):
        load_params(tied_mlp(), tmp_path / "small")
    save([torch.ones(1)], tmp_path / "list")
    with pytest.raises(DivekitError, match="not model parameters"):
        load_params(MLP(20), tmp_path / "list")


def test_saving_an_unrun_lazy_model_asks_for_a_forward_pass(tmp_path):
    with pytest.raises(DivekitError, match="forward pass"):
        save_params(MLP(), tmp_path / "lazy")


class Tripwire:
    """Unpickling this creates a folder: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_files_are_refused_and_never_unpickled(tmp_path, legacy):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": Tripwire(marker)}, path, _use_new_zipfile_serialization=not legacy)
    torch.load(path, weights_only=False)  # the tripwire is armed: a real unpickle runs it
    assert marker.is_dir()
    marker.rmdir()
    for loader in (load, lambda p: load_params(MLP(20), p)):
        with pytest.raises(DivekitError, match="pickle"):
            loader(path)
    assert not marker.exists()


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(torch.ones(3), protocol=4))
    with pytest.raises(DivekitError, match="pickle"):
        load(path)


def test_truncated_or_garbage_files_are_refused(tmp_path):
    data = save(some_tensors(), tmp_path / "good").read_bytes()
    for n in (0, 5, 9, 40, len(data) // 2, len(data) - 1):
        (tmp_path / "bad").write_bytes(data[:n])
        with pytest.raises(DivekitError, match="safetensors"):
            load(tmp_path / "bad")
    (tmp_path / "bad").write_bytes(os.urandom(1000))
    with pytest.raises(DivekitError):
        load(tmp_path / "bad")
    with pytest.raises(DivekitError, match="no file"):
        load(tmp_path / "missing")


def test_writes_leave_no_temporary_files(tmp_path):
    path = tmp_path / "x.safetensors"
    for i in range(3):
        save({"i": torch.tensor(i)}, path)
    save_params(MLP(20), tmp_path / "p.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.safetensors", "x.safetensors"]
    assert load(path)["i"].item() == 2


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save({"w": torch.ones(3)}, tmp_path / "x.safetensors")

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(dio, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save({"w": torch.zeros(3)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]
    assert torch.equal(load(path)["w"], torch.ones(3))


def test_unknown_divekit_format_is_refused(tmp_path):
    save_file({"a": torch.ones(1)}, str(tmp_path / "f"), metadata={dio.HEADER_KEY: '{"format": 99}'})
    with pytest.raises(DivekitError, match="format"):
        load(tmp_path / "f")


def test_inconsistent_header_is_refused(tmp_path):
    save_file({"a": torch.ones(1)}, str(tmp_path / "f"), metadata={dio.HEADER_KEY: '{"format": 1, "tree": ["b"]}'})
    with pytest.raises(DivekitError, match="corrupt"):
        load(tmp_path / "f")


def test_module_load_state_dict_round_trip_with_plain_sequential(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net(torch.randn(8, 3))  # updates BatchNorm's running stats and its int64 counter
    save_params(net, tmp_path / "bn")
    clone = load_params(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), tmp_path / "bn")
    for k, v in net.state_dict().items():
        assert_same(clone.state_dict()[k], v)


def test_background_writer_runs_jobs_in_order_one_at_a_time_and_reraises_failures():
    from divekit.core.io import BackgroundWriter

    done, writer = [], BackgroundWriter()
    for i in range(5):
        writer.submit(lambda i=i: done.append(i))
        assert done[:i] == list(range(i))  # submit waited for the previous jobs; the new one may still run
    writer.wait()
    assert done == list(range(5))

    def fail():
        raise OSError(28, "No space left on device", "run/checkpoint.safetensors")

    writer.submit(fail)
    # in the caller's thread, at the next wait or submit, as one line the CLI prints with what to do
    with pytest.raises(DivekitError, match="could not write run/checkpoint.safetensors: No space left.*--resume"):
        writer.submit(lambda: done.append("after"))
    writer.close()
    assert done[-1] != "after" and writer._pool is None
    writer.close()  # twice is harmless


def test_a_checkpoint_written_in_the_background_is_the_epoch_it_was_taken_at(tmp_path):
    # the payload is a snapshot: training on while the file is written does not leak into it
    from divekit.core.checkpoint import Checkpoint, checkpoint_payload, write_checkpoint
    from divekit.core.io import BackgroundWriter

    net = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    payload = checkpoint_payload(net, None, {"epoch": 1}, save_rng=False)
    writer = BackgroundWriter()
    writer.submit(lambda: write_checkpoint(tmp_path / "c.safetensors", payload))
    with torch.no_grad():
        net.weight.add_(1.0)
    writer.close()
    saved = Checkpoint(tmp_path / "c.safetensors")
    assert all(torch.equal(saved.model_state()[k], before[k]) for k in before)


def test_weights_only_is_the_payload_without_optimizer_and_rng():
    from divekit.core.checkpoint import checkpoint_payload, weights_only

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    last = checkpoint_payload(net, opt, {"epoch": 1})
    tensors, header = weights_only(last)
    expected = checkpoint_payload(net, None, {"epoch": 1}, save_rng=False)
    assert tensors.keys() == expected[0].keys() and all(tensors[k] is last[0][k] for k in tensors)
    assert json.loads(header["divekit"]) == json.loads(expected[1]["divekit"])
