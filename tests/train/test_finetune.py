"""Fine-tuning (book 14.2): weight transfer, the new output layer, per-group rates, frozen bodies, the CLI."""

import json
import pickle
import warnings

import pytest
import torch
import torch.nn as nn

from divekit import create_model
from divekit.cli import main
from divekit.core import io
from divekit.core.errors import DivekitError
from divekit.train.config import TrainConfig
from divekit.train.finetune import (
    finetune_param_groups,
    output_layer,
    prepare_finetune,
    read_pretrained,
    transfer_weights,
)


def lenet(num_classes=10, channels=1, seed=0):
    torch.manual_seed(seed)
    return create_model("lenet-modern", num_classes=num_classes, in_shape=(channels, 28, 28))


@pytest.mark.parametrize("name, expected", [("lenet-modern", "net.11"), ("fastnet", "head.2"),
                                            ("resnet18", "net.last.2"), ("nin", None)])
def test_output_layer_is_the_last_linear_else_the_last_conv(name, expected):
    model = create_model(name, num_classes=7, in_shape=(1, 28, 28) if name != "nin" else (1, 224, 224))
    layer_name, layer = output_layer(model)
    if expected is not None:
        assert layer_name == expected and isinstance(layer, nn.Linear) and layer.out_features == 7
    else:  # NiN ends in a 1x1 convolution to the classes
        assert isinstance(layer, nn.Conv2d) and layer.out_channels == 7


def test_transfer_copies_the_body_and_leaves_a_fresh_head():
    source, target = lenet(10, seed=0), lenet(5, seed=1)
    fresh_head = target.net[11].weight.clone()
    report = transfer_weights(target, source.state_dict())
    for key, value in source.state_dict().items():
        if not key.startswith("net.11."):
            assert torch.equal(target.state_dict()[key], value), key
    assert torch.equal(target.net[11].weight, fresh_head)
    assert report["head"] == ["net.11.weight", "net.11.bias"] and not report["skipped"]
    # same number of classes: the head is still replaced unless asked to keep it
    same = lenet(10, seed=2)
    transfer_weights(same, source.state_dict())
    assert not torch.equal(same.net[11].weight, source.net[11].weight)
    transfer_weights(same, source.state_dict(), keep_head=True)
    assert torch.equal(same.net[11].weight, source.net[11].weight)


def test_first_conv_is_adapted_between_gray_and_rgb():
    gray_model, rgb_model = lenet(10, 1, seed=0).eval(), lenet(10, 3, seed=1).eval()
    report = transfer_weights(rgb_model, gray_model.state_dict(), keep_head=True)
    assert report["adapted"] == ["net.0.weight"]
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():  # a gray image repeated into RGB gives the pretrained network's output
        assert torch.allclose(rgb_model(x.expand(-1, 3, -1, -1)), gray_model(x), atol=1e-5)
    back = lenet(10, 1, seed=2).eval()
    transfer_weights(back, rgb_model.state_dict(), keep_head=True)
    with torch.no_grad():
        assert torch.allclose(back(x), gray_model(x), atol=1e-5)


def test_unrelated_weights_are_refused():
    with pytest.raises(DivekitError, match="no weight of the pretrained file matches"):
        transfer_weights(lenet(), {"conv1.weight": torch.zeros(64, 3, 7, 7)})
    fastnet = create_model("fastnet", num_classes=10)
    with pytest.raises(DivekitError, match="Fine-tune the same model"):
        transfer_weights(fastnet, lenet().state_dict())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weight_files_safetensors_torch_and_refused_pickles(tmp_path):
    model = lenet()
    io.save_params(model, tmp_path / "w.safetensors")
    torch.save({k: v for k, v in model.state_dict().items()}, tmp_path / "w.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ddp.pt")
    for name in ("w.safetensors", "w.pth", "ddp.pt"):
        state, meta = read_pretrained(tmp_path / name)
        assert meta is None and set(state) == set(model.state_dict()), name
        assert torch.equal(state["net.0.weight"], model.net[0].weight)
    # a pickle that would run code is refused by weights_only=True, not executed
    for protocol in (2, 4):
        (tmp_path / "evil.pt").write_bytes(pickle.dumps(Exploit(), protocol=protocol))
        with pytest.raises(DivekitError, match="weights_only"):
            read_pretrained(tmp_path / "evil.pt")
    torch.save(Exploit(), tmp_path / "evil2.pt")  # torch.save's zip format, same refusal
    with pytest.raises(DivekitError, match="refused"):
        read_pretrained(tmp_path / "evil2.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DivekitError):
        read_pretrained(tmp_path / "junk.pt")
    with pytest.raises(DivekitError, match="does not exist"):
        read_pretrained(tmp_path / "missing.safetensors")


class Exploit:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickled code ran')",))


def test_param_groups_head_at_ten_times_and_frozen_body():
    model = lenet()
    body_lr, head_lr = (g["lr"] for g in finetune_param_groups(model, 0.01))
    assert (body_lr, head_lr) == (0.01, pytest.approx(0.1))
    frozen = lenet()
    groups = finetune_param_groups(frozen, 0.05, freeze_body=True)
    assert len(groups) == 1 and groups[0]["lr"] == 0.05
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["net.11.weight", "net.11.bias"]


def test_fit_finetunes_on_digits_then_resumes(tmp_path, one_thread):
    """A real short run: an MLP pretrained on digits, its body frozen, a new head trained on the same
    digits, then resumed: the body never changes, the head learns, the optimizer state resumes."""
    import divekit as dk

    pre = dk.train(model="mlp", data="digits", epochs=3, out=str(tmp_path / "pre"), progress=False)
    cfg = TrainConfig(model="mlp", data="digits", epochs=1, lr=0.1, batch_size=64, init_from=str(pre.run_dir),
                      freeze_body=True, out=str(tmp_path / "ft"))
    result = dk.train(cfg, progress=False)
    head_name, _ = output_layer(result.model)
    before, after = pre.model.state_dict(), result.model.state_dict()
    body = [n for n, _ in result.model.named_parameters() if not n.startswith(head_name + ".")]
    assert body and all(torch.equal(before[n].cpu(), after[n].cpu()) for n in body)
    assert not torch.equal(before[f"{head_name}.weight"].cpu(), after[f"{head_name}.weight"].cpu())
    assert result.metrics["test_acc"] > 0.8
    resumed = dk.train(resume=tmp_path / "ft", epochs=2, progress=False)
    assert resumed.metrics["epoch"] == 2 and resumed.metrics["test_acc"] > 0.8
    assert all(torch.equal(before[n].cpu(), resumed.model.state_dict()[n].cpu()) for n in body)


def test_keep_head_only_for_a_run_on_the_same_classes(tmp_path):
    from divekit.data import load_dataset

    digits = load_dataset("digits", batch_size=64)
    source = create_model("fastnet", context=digits.context)
    meta = {"format": 1, "model": "fastnet", "classes": digits.classes}
    from divekit.core.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "best.safetensors", source, meta=meta, save_rng=False)
    cfg = TrainConfig(model="fastnet", data="digits", init_from=str(tmp_path), lr=0.1)
    same = create_model("fastnet", context=digits.context)
    groups = prepare_finetune(same, digits, cfg)
    assert torch.equal(same.head[2].weight, source.head[2].weight)  # unfreeze step: the trained head carries over
    assert [g["lr"] for g in groups] == [0.1, pytest.approx(1.0)]
    digits.classes = [f"class {i}" for i in range(10)]
    other = create_model("fastnet", context=digits.context)
    prepare_finetune(other, digits, cfg)
    assert not torch.equal(other.head[2].weight, source.head[2].weight)


def test_cli_flags_and_errors(capsys, tmp_path):
    assert main(["train", "mlp", "--data", "digits", "--freeze-body", "--no-progress"]) == 2
    assert "--freeze-body needs --init-from" in capsys.readouterr().err
    assert main(["train", "mlp", "--data", "digits", "--init-from", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "mlp", "--data", "digits", "--init-from", "x", "--head-lr-mult", "0"]) == 2
    assert "--head-lr-mult must be positive" in capsys.readouterr().err


def test_freeze_then_unfreeze_from_the_command_line(tmp_path, monkeypatch, capsys, one_thread):
    """The course's transfer learning as two commands: pretrained on gray digits, then a frozen body
    and a new head on an RGB image folder, then everything at a lower rate from that run."""
    from PIL import Image

    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    gen = torch.Generator().manual_seed(0)
    root = tmp_path / "colors"
    for cls, channel in (("red", 0), ("green", 1), ("blue", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            px = (torch.rand(12, 12, 3, generator=gen) * 80).to(torch.uint8)
            px[..., channel] += 150
            Image.fromarray(px.numpy()).save(root / cls / f"{i}.png")
    common = ["--data", f"folder:{root}", "--resize", "28", "--no-progress", "--json", "--batch-size", "8"]
    assert main(["train", "lenet-modern", "--data", "digits", "--resize", "28", "--epochs", "1",
                 "--out", str(tmp_path / "pre"), "--no-progress"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "lenet-modern", *common, "--init-from", str(tmp_path / "pre"), "--freeze-body",
                     "--epochs", "3", "--lr", "0.1", "--out", str(tmp_path / "head")]) == 0
        head = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(["train", "lenet-modern", *common, "--init-from", str(tmp_path / "head"), "--epochs", "3",
                     "--lr", "0.01", "--momentum", "0.9", "--out", str(tmp_path / "all")]) == 0
        full = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pre_w = io.load(tmp_path / "pre" / "best.safetensors")
    head_w = io.load(tmp_path / "head" / "best.safetensors")
    # the frozen stage kept the pretrained body (the gray first conv spread over RGB) and learned a head
    assert torch.allclose(head_w["model.net.0.weight"], pre_w["model.net.0.weight"].repeat(1, 3, 1, 1) / 3)
    assert torch.equal(head_w["model.net.3.weight"], pre_w["model.net.3.weight"])
    assert head_w["model.net.11.weight"].shape == (3, 84)
    assert json.loads((tmp_path / "all" / "config.json").read_text())["init_from"] == str(tmp_path / "head")
    assert full["valid_acc"] >= 0.8 and full["valid_acc"] >= head["valid_acc"] - 0.15, (head, full)
