"""Each hand-written schedule against its torch.optim.lr_scheduler counterpart."""

import json

import pytest
import torch

import divekit as dk
from divekit.core.errors import ConfigError
from divekit.ops.schedules import Cosine, Exponential, MultiStep, OneCycle, Plateau, Step, build_schedule

LR = 0.5


def torch_lrs(make, epochs, steps_per_epoch=1, per_step=False):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = make(opt)
    out = []
    for _ in range(epochs * (steps_per_epoch if per_step else 1)):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def ours(schedule, epochs, steps_per_epoch=1, per_step=False):
    if per_step:
        return [LR * schedule.factor(e, s, steps_per_epoch) for e in range(epochs) for s in range(steps_per_epoch)]
    return [LR * schedule.factor(e, 0, steps_per_epoch) for e in range(epochs)]


@pytest.mark.parametrize(
    "schedule, make",
    [
        (Step(3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (MultiStep([2, 5, 7], 0.3), lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 7], 0.3)),
        (Exponential(0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (Cosine(10), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
        (Cosine(10, final=0.1), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=LR * 0.1)),
    ],
)
def test_epoch_schedules_match_torch(schedule, make):
    assert ours(schedule, 10) == pytest.approx(torch_lrs(make, 10), rel=1e-9)


def test_onecycle_matches_torch_every_step():
    epochs, steps = 4, 25
    make = lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=LR, total_steps=epochs * steps)  # noqa: E731
    expected = torch_lrs(make, epochs, steps, per_step=True)
    assert ours(OneCycle(epochs), epochs, steps, per_step=True) == pytest.approx(expected, rel=1e-9)


def test_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.95, 0.93, 0.91, 0.8, 0.85, 0.86, 0.84, 0.83, 0.9]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    mine = Plateau(factor=0.5, patience=1)
    for m in metrics:
        ref.step(m)
        mine.on_epoch_end(m)
        assert LR * mine.factor(0, 0, 1) == pytest.approx(opt.param_groups[0]["lr"])
    assert mine.factor(0, 0, 1) < 1  # it did reduce


def test_cosine_warmup_is_linear_then_peaks():
    c = Cosine(10, warmup_epochs=2)
    assert c.factor(0, 0, 10) == 0 and c.factor(1, 0, 10) == pytest.approx(0.5)
    assert c.factor(2, 0, 10) == pytest.approx(1.0)
    assert c.factor(9, 9, 10) < 0.01


@pytest.mark.parametrize(
    "name, args, message",
    [("stepp", {}, "unknown --scheduler"), ("step", {"gama": 0.1}, "gama"), ("step", {"gamma": 2}, "gamma"),
     ("exponential", {"gamma": 0}, "gamma"), ("onecycle", {"pct_start": 1.5}, "pct_start")],
)
def test_bad_schedule_settings(name, args, message):
    with pytest.raises(ConfigError, match=message):
        build_schedule(name, 10, **args)
    with pytest.raises(ConfigError, match="--warmup-epochs"):
        build_schedule(None, 10, warmup_epochs=1)


def test_trainer_follows_the_schedule_and_resumes_it(tmp_path):
    result = dk.train(model="softmax-regression", data="digits", epochs=5, scheduler="step",
                      scheduler_args={"step_size": 2, "gamma": 0.5}, out=str(tmp_path / "r"), progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    dk.train(model="softmax-regression", data="digits", epochs=3, scheduler="plateau", monitor="train_acc",
             scheduler_args={"patience": 0, "factor": 0.5}, out=str(tmp_path / "p"), progress=False)
    resumed = dk.train(resume=tmp_path / "p", epochs=5, progress=False)
    full = dk.train(model="softmax-regression", data="digits", epochs=5, scheduler="plateau", monitor="train_acc",
                    scheduler_args={"patience": 0, "factor": 0.5}, out=str(tmp_path / "f"), progress=False)
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in full.history]
    assert json.loads((tmp_path / "p" / "config.json").read_text())["scheduler"] == "plateau"
