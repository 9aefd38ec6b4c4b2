"""The `divekit` command, in-process (main(argv)) and once as a real subprocess."""

import argparse
import json
import subprocess
import sys

import pytest
from helpers import last_json
from PIL import Image

from divekit.cli import main
from divekit.core.checkpoint import Checkpoint
from divekit.data.transforms import to_float
from divekit.data.vision import load_digits_tensors
from divekit.train.api import load_run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "softmax-regression", "--epochs", "5", "--out", str(run_dir), "--no-progress"]) == 0
    return run_dir


def test_train_json_as_a_real_command(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "divekit", "train", "softmax-regression", "--data", "digits", "--epochs", "2",
         "--out", str(tmp_path / "r"), "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    summary = last_json(out)
    assert {"test_acc", "test_loss", "train_loss", "seconds", "run_dir"} <= summary.keys()
    assert summary["epochs"] == 2 and summary["run_dir"] == str(tmp_path / "r")
    assert 0.5 < summary["test_acc"] <= 1


def test_list(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "softmax-regression-scratch" in out and "linear-regression" in out
    assert main(["list", "datasets", "--json"]) == 0
    names = set(last_json(capsys.readouterr().out)["datasets"])
    assert {"digits", "fashion-mnist", "mnist", "synthetic-linear"} <= names
    assert main(["list", "models", "softmax*", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["models"] == ["softmax-regression", "softmax-regression-scratch"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "softmax-regresion"], "Did you mean 'softmax-regression'"),
        (["train", "softmax-regression", "--data", "fashion-mnst"], "Did you mean 'fashion-mnist'"),
        (["train", "softmax-regression", "--lr", "-0.1"], "--lr must be positive"),
        (["train", "softmax-regression", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "linear-regression", "--resize", "20"], "--resize applies to image datasets"),
        (["train", "softmax-regression", "--optimizer", "sgdd"], "Did you mean 'sgd'"),
        (["train"], "no model given"),
        (["eval", "/nonexistent/run"], "no checkpoint"),
        (["train", "mlp", "--data", "digits", "--model-arg", "num_hiddens=-5", "--epochs", "1"], "num_hiddens=-5"),
        (["train", "mlp", "--data", "digits", "--out", "/proc/forbidden", "--epochs", "1"], "--out"),
        (["train", "mlp", "--data", "digits", "--monitor", "test_accuracy", "--epochs", "1"], "Did you mean 'test_acc'"),
        (["train", "mlp", "--data", "digits", "--momentum", "5"], "--momentum must be in [0, 1)"),
        (["train", "mlp", "--data", "digits", "--device", "cuda:x"], "--device"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, argv, message):
    assert main(argv + ["--json"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert message in last_json(captured.out)["error"]


def test_eval_reports_per_class_accuracy(digits_run, capsys):
    assert main(["eval", str(digits_run), "--json"]) == 0
    report = last_json(capsys.readouterr().out)
    assert len(report["per_class_acc"]) == 10 and report["n"] == 359
    history = json.loads((digits_run / "metrics.json").read_text())
    best_epoch = Checkpoint(digits_run / "best.safetensors").meta["trainer"]["epoch"]
    assert report["test_acc"] == pytest.approx(history[best_epoch - 1]["test_acc"], abs=1e-6)
    assert (digits_run / "confusion.png").stat().st_size > 1000


def test_predict_agrees_with_the_model(digits_run, tmp_path, capsys):
    _, _, x_test, _ = load_digits_tensors()
    paths = []
    for i in range(4):
        p = tmp_path / f"d{i}.png"
        Image.fromarray(x_test[i, 0].numpy()).save(p)
        paths.append(str(p))
    assert main(["predict", str(digits_run), *paths, "--json"]) == 0
    rows = last_json(capsys.readouterr().out)["predictions"]
    model, _ = load_run(digits_run)
    expected = model(to_float(x_test[:4])).argmax(1).tolist()
    assert [int(r["top"][0]["class"]) for r in rows] == expected
    assert all(abs(sum(g["prob"] for g in r["top"]) - 1) < 0.5 for r in rows)


def test_predict_rejects_a_non_image(digits_run, tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert main(["predict", str(digits_run), str(bad)]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_resume_from_the_cli(digits_run, capsys):
    assert main(["train", "--resume", str(digits_run), "--epochs", "6", "--json", "--no-progress"]) == 0
    assert last_json(capsys.readouterr().out)["epochs"] == 6


def test_data_verify_and_download(shared_data, tmp_path, monkeypatch, capsys):
    assert main(["data", "verify", "--data-dir", str(shared_data), "--json"]) == 0
    files = last_json(capsys.readouterr().out)["files"]
    assert {"dataset": "time-machine", "path": "timemachine.txt", "status": "ok"} in files
    monkeypatch.setenv("DIVEKIT_MIRROR", shared_data.as_uri())
    target = tmp_path / "cache"
    assert main(["data", "download", "time-machine", "--data-dir", str(target), "--json"]) == 0
    assert (target / "timemachine.txt").read_bytes() == (shared_data / "timemachine.txt").read_bytes()
    (target / "timemachine.txt").write_text("tampered")
    capsys.readouterr()
    assert main(["data", "verify", "--data-dir", str(target)]) == 1
    assert "BAD" in capsys.readouterr().out


def test_misuse_is_one_line_exit_2_naming_the_option(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "mlp", "--data", "digits", "--model-arg", "num_hiddens=-5", "--epochs", "1"],
         ["model 'mlp'", "num_hiddens=-5", "num_hiddens, dropouts"]),
        (["train", "mlp", "--data", "digits", "--out", "/proc/forbidden", "--epochs", "1"],
         ["/proc/forbidden", "choose another --out"]),
        (["train", "mlp", "--data", "digits", "--monitor", "nosuch_metric", "--epochs", "1"],
         ["--monitor 'nosuch_metric'", "test_acc"]),
        (["train", "mlp", "--data", "digits", "--momentum", "5"], ["--momentum", "[0, 1)"]),
        (["eval", str(tmp_path), "--device", "gpu"], ["--device", "'gpu'"]),
        (["predict", str(tmp_path), "x.png", "--top", "-3"], ["--top"]),
        (["train", "mlp", "--epochs", "many"], ["--epochs", "'many'"]),
        (["train", "mlp", "--model-arg", "=3"], ["--model-arg", "KEY=VALUE"]),
        (["nosuchverb"], ["invalid choice: 'nosuchverb'"]),
    ]
    for argv, parts in cases:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("divekit: error: "), err
        assert all(p in err for p in parts), (argv, err)
    assert not (tmp_path / "runs").exists()  # the failures came before training


def test_broken_pipe_exits_quietly():
    proc = subprocess.run(f"{sys.executable} -m divekit list models | true", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_train_flags_come_from_train_config(capsys):
    import dataclasses

    from divekit.train.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        flag = ("--" + f.name.replace("_", "-")).replace("-args", "-arg")  # model_args -> --model-arg
        flag = f.metadata.get("flag", flag)  # plot -> --no-plot
        if f.name != "model":
            assert flag in text, flag
        assert " ".join(f.metadata["help"].split())[:40] in text, f.name
    for option in ("--resume", "--config", "--target", "--features", "--no-progress", "--json"):
        assert option in text


def test_unset_train_flags_do_not_override_the_config_file(tmp_path):
    from divekit.cli import build_parser
    from divekit.cli.train import config_flags

    flags = config_flags(build_parser().parse_args(["train", "mlp", "--channels-last"]))
    assert flags["model"] == "mlp" and flags["channels_last"] is True
    assert all(v is None for k, v in flags.items() if k not in ("model", "channels_last"))
    flags = config_flags(build_parser().parse_args(["train", "--model-arg", "a=1", "--model-arg", "b=x"]))
    assert flags["model_args"] == {"a": 1, "b": "x"}


def test_verbs_are_modules_with_add_parser_and_run():
    import importlib

    from divekit.apps.kaggle import MODELS
    from divekit.cli import VERBS
    from divekit.cli.kaggle_house import MODELS as CLI_MODELS

    for name in VERBS:
        module = importlib.import_module(f"divekit.cli.{name}")
        assert callable(module.add_parser) and callable(module.run)
    assert CLI_MODELS == tuple(MODELS)


def test_key_value_flags_parse_json_and_comma_lists():
    from divekit.cli.common import key_value as _model_arg

    assert _model_arg("widths=16,32,64") == ("widths", [16, 32, 64])
    assert _model_arg("widths=[16, 32]") == ("widths", [16, 32])
    assert _model_arg("dropout=0.3") == ("dropout", 0.3)
    assert _model_arg("sampling=sequential") == ("sampling", "sequential")
    assert _model_arg("names=a,b") == ("names", "a,b")  # not numbers: kept as written
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        _model_arg("widths")
