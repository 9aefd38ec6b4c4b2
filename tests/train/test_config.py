import json

import pytest
import torch

from divekit.core.errors import ConfigError
from divekit.train.api import resolve_config
from divekit.train.config import TrainConfig, read_config_file, resolve


def test_defaults_layering_model_over_dataset_over_base():
    cfg = resolve_config(model="linear-regression-scratch")
    assert cfg.data == "synthetic-linear"  # the model's default dataset
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (0.03, 10, 3)  # the book's settings
    assert cfg.optimizer == "sgd-scratch"
    cfg = resolve_config(model="softmax-regression", data="fashion-mnist")
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (0.1, 256, 10)


def test_flags_override_file_override_defaults(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('model = "softmax-regression"\ndata = "digits"\nepochs = 7\nlr = 0.5\n')
    cfg = resolve_config(f, lr=0.2, epochs=None)
    assert (cfg.epochs, cfg.lr) == (7, 0.2)
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"model": "softmax-regression", "batch_size": 32}))
    assert resolve_config(j).batch_size == 32


@pytest.mark.parametrize(
    "values, option",
    [({"lr": -1}, "--lr"), ({"epochs": 0}, "--epochs"), ({"batch_size": 0}, "--batch-size"),
     ({"resize": -3}, "--resize"), ({"optimizer": "adamm"}, "adam"), ({"device": "gpu"}, "--device"),
     ({"weight_decay": -0.1}, "--weight-decay"), ({"momentum": 5}, r"--momentum must be in \[0, 1\)"),
     ({"momentum": -0.1}, "--momentum"), ({"momentum": 1.0}, "--momentum"), ({"device": "cuda:x"}, "--device")],
)
def test_invalid_values_name_the_option(values, option):
    with pytest.raises(ConfigError, match=option):
        resolve({"model": "softmax-regression", **values}).validate()  # ranges are checked when a run starts


def test_type_errors_and_unknown_keys():
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        resolve({"epochs": 2.5})
    with pytest.raises(ConfigError, match="lr must be a number"):
        resolve({"lr": "fast"})
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        resolve({"epoch": 3})
    assert resolve({"epochs": "4", "lr": "0.5"}).epochs == 4  # strings from files/CLI are converted


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(tmp_path / "missing.toml")
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(lst)


def test_unknown_model_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'softmax-regression'"):
        resolve_config(model="softmax-regresion")


def test_config_round_trips_through_json():
    cfg = resolve_config(model="softmax-regression", model_args={"sigma": 0.1})
    assert resolve(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert isinstance(cfg, TrainConfig)


def test_every_field_has_help_for_its_flag():
    import dataclasses

    assert all(f.metadata.get("help") for f in dataclasses.fields(TrainConfig))


def test_model_factory_errors_name_the_arguments():
    from divekit.models.registry import create_model

    with pytest.raises(ConfigError, match=r"model 'mlp' cannot be built with num_hiddens=-5.*num_hiddens, dropouts"):
        create_model("mlp", context={"num_classes": 10, "in_shape": (1, 8, 8)}, num_hiddens=-5)


def test_resnet18_on_cifar10_is_book_14_1():
    # `divekit train resnet18 --data cifar10 --augment flip` is the book's 14.1 experiment: d2l.resnet18
    # (3x3 stem, no max pool) on 32x32 images, Adam lr 0.001, batch 256; elsewhere resnet18 keeps 8.6's settings
    from divekit.models.registry import create_model

    cfg = resolve_config(model="resnet18", data="cifar10", augment="flip")
    assert (cfg.resize, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == (None, "adam", 0.001, 256, 10)
    context = {"num_classes": 10, "in_shape": (3, 32, 32)}
    ours, book = (create_model(name, context=context, **args) for name, args in
                  (("resnet18", cfg.model_args), ("resnet18-cifar", {})))
    assert str(ours) == str(book)
    assert ours(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    same = {"model": "resnet18", "model_args": {"small_input": True}}
    assert resolve_config(model="resnet18-cifar").to_dict() | same == cfg.to_dict() | {"augment": None}
    fashion = resolve_config(model="resnet18")  # book 8.6 on Fashion-MNIST, untouched
    assert (fashion.resize, fashion.optimizer, fashion.model_args) == (96, "sgd", {})
    stem = resolve_config(model="resnet18", data="cifar10", model_args={"small_input": False})  # 8.6's on CIFAR
    assert create_model("resnet18", context=context, **stem.model_args).net.b1[0].kernel_size == (7, 7)
