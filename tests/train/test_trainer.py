"""The trainer on real (embedded) data: run folders, resume, NaN handling, checkpoints, callbacks."""

import json
import os

import pytest
import torch
import torch.nn as nn

import divekit as dk
import divekit.core.io as divekit_io
from divekit.core.checkpoint import Checkpoint, save_checkpoint
from divekit.core.errors import DivekitError, TrainingDiverged
from divekit.models.registry import MODELS, register_model
from divekit.ops.metrics import classification_confusion as confusion_matrix
from divekit.train.callbacks import Callback, EarlyStopping, StopTraining
from divekit.train.evaluate import classification_report

if "test-dropout-mlp" not in MODELS:

    @register_model("test-dropout-mlp", tags=("image",))
    def _dropout_mlp(num_classes=10, in_shape=(1, 8, 8)):
        """A small MLP with dropout: its training depends on the global RNG (for resume tests)."""
        n = in_shape[0] * in_shape[1] * in_shape[2]
        return nn.Sequential(nn.Flatten(), nn.Linear(n, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, num_classes))

    @register_model("test-fixed-784", tags=("image",))
    def _fixed(num_classes=10):
        """Takes 28x28 inputs only."""
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))


def run(tmp_path, name="run", **overrides):
    settings = dict(model="softmax-regression", data="digits", out=str(tmp_path / name))
    settings.update(overrides)
    return dk.train(progress=False, **settings)


def test_digits_main_job_accuracy_and_run_folder(tmp_path):
    """The README's main command: softmax regression on the embedded digits, book-style defaults."""
    result = run(tmp_path)
    assert result.metrics["test_acc"] >= 0.9
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "metrics.json", "metrics.csv", "curves.png", "checkpoint.safetensors", "best.safetensors"} <= files
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"] == "softmax-regression" and cfg["epochs"] == result.config.epochs
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(history) == cfg["epochs"] and history[-1]["test_acc"] == result.metrics["test_acc"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == cfg["epochs"] + 1 and "test_acc" in lines[0]


def weights(run_dir):
    return Checkpoint(run_dir / "checkpoint.safetensors").model_state()


@pytest.mark.parametrize("model", ["softmax-regression", "test-dropout-mlp"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, model):
    full = run(tmp_path, "full", model=model, epochs=4)
    run(tmp_path, "half", model=model, epochs=2)
    resumed = dk.train(resume=tmp_path / "half", epochs=4, progress=False)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "half")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


class CrashAt(Callback):
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_step_end(self, trainer, step):
        if trainer.epoch == self.epoch and step == self.step:
            raise KeyboardInterrupt


def test_resume_after_a_crash_mid_epoch(tmp_path):
    run(tmp_path, "full", model="test-dropout-mlp", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        dk.train(
            model="test-dropout-mlp", data="digits", out=str(tmp_path / "crash"), epochs=3, progress=False,
            callbacks=[CrashAt(epoch=1, step=5)])
    assert Checkpoint(tmp_path / "crash" / "checkpoint.safetensors").meta["trainer"]["epoch"] == 1
    dk.train(resume=tmp_path / "crash", progress=False)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "crash")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_changing_the_run(tmp_path):
    run(tmp_path, epochs=1)
    with pytest.raises(dk.ConfigError, match="cannot change lr"):
        dk.train(resume=tmp_path / "run", lr=0.5, epochs=2, progress=False)
    with pytest.raises(dk.ConfigError, match="already finished 1 epochs"):
        dk.train(resume=tmp_path / "run", progress=False)


class Poison(Callback):
    """Sets a weight to NaN at a given epoch and step, as a diverging run would."""

    def on_step_end(self, trainer, step):
        if trainer.epoch == 1 and step == 3:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 5"):
        dk.train(model="softmax-regression", data="digits", out=str(tmp_path / "r"), epochs=3, progress=False,
                 callbacks=[Poison()])
    ck = Checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    assert ck.meta["trainer"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck.model_state().values())


class BrokenTeardown(Callback):
    def teardown(self, trainer):
        raise OSError("disk full")


class CountTeardown(Callback):
    calls = 0

    def teardown(self, trainer):
        type(self).calls += 1


def test_a_failing_teardown_neither_hides_the_runs_error_nor_skips_the_others(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 5") as caught:
        dk.train(model="softmax-regression", data="digits", out=str(tmp_path / "r"), epochs=3, progress=False,
                 callbacks=[Poison(), BrokenTeardown(), CountTeardown()])
    assert CountTeardown.calls == 1 and "OSError: disk full" in "".join(caught.value.__notes__)
    with pytest.raises(OSError, match="disk full"):  # a run that went well reports the failure itself
        dk.train(model="softmax-regression", data="digits", out=str(tmp_path / "s"), epochs=1, progress=False,
                 callbacks=[BrokenTeardown(), CountTeardown()])
    assert CountTeardown.calls == 2


def test_exploding_learning_rate_is_reported(tmp_path):
    with pytest.raises(TrainingDiverged, match="smaller --lr"):
        dk.train(model="linear-regression", lr=50.0, out=str(tmp_path / "r"), progress=False)


def test_model_that_cannot_take_the_input_fails_before_training(tmp_path):
    with pytest.raises(dk.ConfigError, match=r"cannot take inputs of shape \(1, 8, 8\).*--resize"):
        run(tmp_path, model="test-fixed-784")
    assert not (tmp_path / "run").exists()


def test_checkpoint_round_trip_and_atomic_write(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.safetensors", model, opt, {"note": "first"})
    clone, opt2 = nn.Linear(3, 2), torch.optim.Adam(nn.Linear(3, 2).parameters(), lr=0.1)
    ck = Checkpoint(path)
    ck.load_model(clone)
    x = torch.randn(5, 3)
    torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
    opt2 = torch.optim.Adam(clone.parameters(), lr=0.1)
    ck.load_optimizer(opt2)
    for s1, s2 in zip(opt.state.values(), opt2.state.values()):
        assert all(torch.equal(s1[k], s2[k]) for k in s1)

    def broken(*a, **k):
        open(a[1], "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(divekit_io, "save_file", broken)
    with pytest.raises(OSError):
        save_checkpoint(path, model, opt, {"note": "second"})
    assert Checkpoint(path).meta["note"] == "first"  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["c.safetensors"]  # no temporary file left behind


def test_tied_weights_are_saved(tmp_path):
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    Checkpoint(save_checkpoint(tmp_path / "t.safetensors", model)).load_model(model)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle"])
def test_corrupt_checkpoints_give_a_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.safetensors", nn.Linear(30, 30))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01" * 100)
    else:
        torch.save({"x": 1}, path)  # a pickle renamed: must be refused, never unpickled
    with pytest.raises(DivekitError, match="pickle" if damage == "pickle" else "corrupt or truncated"):
        Checkpoint(path)


def test_checkpoint_for_another_model_names_the_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", nn.Linear(3, 2))
    with pytest.raises(DivekitError, match="different shapes"):
        Checkpoint(path).load_model(nn.Linear(4, 2))


def test_early_stopping_counts_epochs_without_improvement():
    class T:
        config = dk.TrainConfig(monitor="test_loss")

    es = EarlyStopping(patience=2)
    for loss in (1.0, 0.9, 0.95):
        es.on_epoch_end(T(), {"test_loss": loss})
    with pytest.raises(StopTraining):
        es.on_epoch_end(T(), {"test_loss": 0.91})
    acc = EarlyStopping(patience=1)
    T.config = dk.TrainConfig(monitor="test_acc")
    acc.on_epoch_end(T(), {"test_acc": 0.5})
    acc.on_epoch_end(T(), {"test_acc": 0.6})  # accuracy going up is an improvement
    with pytest.raises(StopTraining):
        acc.on_epoch_end(T(), {"test_acc": 0.6})


def test_early_stopping_ends_a_real_run(tmp_path):
    result = run(tmp_path, epochs=50, patience=1, monitor="train_acc", lr=1e-6)
    assert len(result.history) < 50


def test_best_checkpoint_holds_the_best_epoch(tmp_path):
    result = run(tmp_path, epochs=6, monitor="test_acc")
    best = Checkpoint(tmp_path / "run" / "best.safetensors")
    epoch = best.meta["trainer"]["epoch"]
    assert result.history[epoch - 1]["test_acc"] == max(h["test_acc"] for h in result.history)
    model, ck = dk.load_run(tmp_path / "run", "best")
    assert ck.path.name == "best.safetensors" and not model.training


def test_progress_logs_carry_throughput(tmp_path):
    seen = []

    class Spy(Callback):
        def on_log(self, trainer, logs):
            seen.append(logs)

    dk.train(model="softmax-regression", data="digits", epochs=1, log_every=5, out=str(tmp_path / "r"),
             progress=False, callbacks=[Spy()])
    assert [s["step"] for s in seen] == [5, 10, 15, 20, 23]
    assert all(s["per_s"] > 0 and 0 <= s["acc"] <= 1 for s in seen)


def test_confusion_matrix_and_report():
    preds, labels = torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 2, 0])
    assert confusion_matrix(preds, labels, 3).tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return nn.functional.one_hot(x.long(), 3).float() * 10

    loader = dk.TensorLoader(preds, labels, batch_size=4)
    report = classification_report(Fixed(), loader, 3)
    assert report["acc"] == pytest.approx(4 / 6)
    assert report["per_class_acc"] == pytest.approx([0.5, 1.0, 2 / 3])


def test_curves_redraw_live_in_a_notebook(tmp_path, monkeypatch):
    """In Jupyter the figure is displayed once and then updated in place every epoch."""
    import IPython.display

    from divekit.train.callbacks import PlotCurves

    calls = []

    class Handle:
        def update(self, fig):
            calls.append("update")

    def display(fig, display_id=False):
        calls.append("display")
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    dk.train(model="softmax-regression", data="digits", epochs=3, out=str(tmp_path / "r"), progress=False,
             callbacks=[PlotCurves(None, live=True, live_every_s=0)])
    assert calls == ["display", "update", "update", "update"]  # 3 epochs + the final redraw

    calls.clear()  # quick epochs are redrawn at most once a second: the first, then the end
    dk.train(model="softmax-regression", data="digits", epochs=5, out=str(tmp_path / "s"), progress=False,
             callbacks=[PlotCurves(None, live=True, live_every_s=3600)])
    assert calls == ["display", "update"]


def test_bf16_autocast_trains_as_well(tmp_path):
    fp32 = run(tmp_path, "fp32", epochs=5)
    bf16 = run(tmp_path, "bf16", epochs=5, precision="bf16", channels_last=True)
    assert abs(bf16.metrics["test_acc"] - fp32.metrics["test_acc"]) < 0.05
    assert bf16.config.precision == "bf16"


def test_fp16_without_cuda_fails_before_writing_anything(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(dk.ConfigError, match="fp16 needs a CUDA GPU"):
        run(tmp_path, precision="fp16")
    assert not (tmp_path / "run").exists()
    with pytest.raises(dk.ConfigError, match="--precision must be one of"):
        run(tmp_path, precision="int8")


def test_augment_changes_training_batches_only():
    plain = dk.load_dataset("digits", batch_size=32, seed=0)
    aug = dk.load_dataset("digits", batch_size=32, seed=0, augment="flip-crop")
    xp, yp = next(iter(plain.train))
    xa, ya = next(iter(aug.train))
    assert torch.equal(yp, ya) and xa.shape == xp.shape and not torch.equal(xa, xp)
    assert torch.equal(next(iter(plain.test))[0], next(iter(aug.test))[0])  # evaluation is never augmented
    again = next(iter(dk.load_dataset("digits", batch_size=32, seed=0, augment="flip-crop").train))[0]
    assert torch.equal(xa, again)  # seeded
    with pytest.raises(dk.ConfigError, match="--augment applies to image datasets"):
        dk.load_dataset("synthetic-linear", augment="flip")
    with pytest.raises(dk.ConfigError, match="--augment must be one of"):
        dk.TrainConfig(augment="rotate").validate()


def test_resized_crop_flip_is_the_books_square_crop_of_64_to_100_percent():
    from divekit.data.vision import image_classification

    # channel 0 rises along the columns and channel 1 down the rows, 8 levels a pixel, so each
    # augmented image is a linear ramp whose slopes give the crop's side and the flip
    ramp = torch.arange(32, dtype=torch.uint8) * 8
    x = torch.stack([ramp.expand(32, 32), ramp[:, None].expand(32, 32)]).expand(64, 2, 32, 32).contiguous()
    bundle = image_classification("ramps", x, torch.zeros(64, dtype=torch.long), x[:4], torch.zeros(4, dtype=torch.long),
                                  ["a"], batch_size=64, seed=0, device="cpu", augment="resized-crop-flip")
    xa, _ = next(iter(bundle.train))
    assert xa.shape == (64, 2, 32, 32)
    inner = xa[:, :, 1:-1, 1:-1] * 255 / 8  # back to pixels of the source; the border pixel may clamp
    col_slope = inner[:, 0].diff(dim=-1)  # each row: a ramp of side / 32 source pixels per output pixel
    row_slope = inner[:, 1].diff(dim=-2)
    side = row_slope.mean(dim=(1, 2))
    assert torch.allclose(col_slope.abs(), side[:, None, None].expand_as(col_slope), atol=1e-3)  # square: ratio 1
    assert torch.allclose(row_slope, side[:, None, None].expand_as(row_slope), atol=1e-3)
    assert side.min() >= 0.8 - 1e-3 and side.max() <= 1 + 1e-3  # sqrt(0.64) = 0.8 of the side, up to all of it
    assert side.max() - side.min() > 0.05  # the side varies between images
    flipped = col_slope.mean(dim=(1, 2)) < 0
    assert 0 < flipped.sum() < 64  # about half mirrored
    assert torch.equal(next(iter(bundle.test))[0], x[:4].float() / 255)  # evaluation is never augmented


def test_label_smoothing_applies_to_training_loss_only():
    from divekit.tasks.base import Classification

    logits, y = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    smooth, plain = Classification(0.1), Classification()
    assert smooth.default_loss(logits, y, training=True) > plain.default_loss(logits, y, training=True)
    assert smooth.default_loss(logits, y, training=False) == plain.default_loss(logits, y, training=False)
    torch.testing.assert_close(smooth.default_loss(logits, y, True),
                               nn.functional.cross_entropy(logits, y, label_smoothing=0.1))


def test_time_limit_cuts_the_epoch_short_and_evaluates_it(tmp_path):
    result = run(tmp_path, epochs=50, time_limit=1e-6)
    assert len(result.history) == 1 and "test_acc" in result.metrics
    assert result.metrics["seconds"] < 5


def test_no_plot_skips_the_curves_and_threads_are_recorded(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("DIVEKIT_THREADS", "1")
    before = torch.get_num_threads()
    config = tmp_path / "r" / "config.json"
    try:
        result = dk.train(model="softmax-regression", data="digits", epochs=1, out=str(tmp_path / "r"),
                          progress=False, plot=False)
        assert torch.get_num_threads() == 1
        recorded = json.loads(config.read_text())
        # the setting stays "the machine decides" (None); what it decided is recorded beside it
        assert recorded["threads"] is None is result.config.threads and recorded["machine"]["threads"] == 1
        assert {"omp_wait_policy", "busy_cores_at_import"} <= set(recorded["machine"])
        monkeypatch.setenv("DIVEKIT_THREADS", "2")  # a resumed run (and --config config.json) chooses again
        dk.train(resume=tmp_path / "r", epochs=2, progress=False)
        assert torch.get_num_threads() == 2 and json.loads(config.read_text())["machine"]["threads"] == 2
        from divekit.train.api import resolve_config

        assert resolve_config(config, model="softmax-regression").threads is None
    finally:
        torch.set_num_threads(before)
    assert not (tmp_path / "r" / "curves.png").exists() and (tmp_path / "r" / "metrics.csv").is_file()


def test_early_stopping_state_in_the_checkpoint_is_that_of_the_epoch_saved(tmp_path):
    # the saver runs after the other callbacks (and after one that stops training), so a resumed run
    # continues early stopping's count from the epoch the checkpoint holds, not from the one before
    run = tmp_path / "r"
    dk.train(model="softmax-regression", data="digits", out=str(run), epochs=8, lr=1e-6, patience=2,
             monitor="test_acc", progress=False)
    ck = Checkpoint(run / "checkpoint.safetensors")
    history = ck.meta["trainer"]["history"]
    state = ck.meta["trainer"]["callbacks"]["EarlyStopping"]
    assert len(history) == ck.meta["trainer"]["epoch"] < 8  # it stopped early, and that epoch was saved
    assert state["wait"] == 2 and state["best"] == max(h["test_acc"] for h in history)
