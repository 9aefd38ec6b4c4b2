"""Chapter 12: the hand-written optimizers against torch.optim, their state, validation and registry."""

import copy
import inspect
import re

import pytest
import torch
import torch.nn.functional as F

from divekit.core.checkpoint import Checkpoint, save_checkpoint
from divekit.core.errors import ConfigError
from divekit.data.synthetic import synthetic_linear
from divekit.ops.optim import OPTIMIZERS, SGD, Adadelta, AdaGrad, Adam, Momentum, RMSProp, build_optimizer
from divekit.train.config import TrainConfig

# scratch class -> torch's own, called with the scratch class's (book-named) hyperparameters
TWINS = {
    SGD: torch.optim.SGD,
    Momentum: lambda params, beta=0.9, **kw: torch.optim.SGD(params, momentum=beta, **kw),
    AdaGrad: torch.optim.Adagrad,
    RMSProp: lambda params, gamma=0.99, **kw: torch.optim.RMSprop(params, alpha=gamma, **kw),
    Adadelta: torch.optim.Adadelta,
    Adam: lambda params, beta1=0.9, beta2=0.999, **kw: torch.optim.Adam(params, betas=(beta1, beta2), **kw),
}

# the defaults, then other values with weight decay and an eps large enough that where it goes (inside or
# outside the root) changes the result well beyond the tolerance
SETTINGS = [
    (SGD, {"lr": 0.05}),
    (Momentum, {"lr": 0.05}),
    (Momentum, {"lr": 0.01, "beta": 0.5, "weight_decay": 0.1}),
    (AdaGrad, {"lr": 0.1}),
    (AdaGrad, {"lr": 0.3, "eps": 1e-2, "weight_decay": 0.05}),
    (RMSProp, {"lr": 0.01}),
    (RMSProp, {"lr": 0.03, "gamma": 0.9, "eps": 1e-3, "weight_decay": 0.05}),
    (Adadelta, {"lr": 1.0}),
    (Adadelta, {"lr": 0.5, "rho": 0.95, "eps": 1e-3, "weight_decay": 0.05}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3, "weight_decay": 0.05}),
]
SCRATCH = [Momentum, AdaGrad, RMSProp, Adadelta, Adam]

SHAPES = [(5, 3), (7,), (2, 3, 4)]
GRAD_SCALES = [1.0, 1e-3, 10.0]  # tiny gradients make eps matter, large ones the normalisation


def _params(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in SHAPES]


class _Gradients:
    """Seeded gradients of a noisy quadratic 0.5 * scale * ||w - target||^2, handed to several copies alike."""

    def __init__(self, dtype=torch.float64, seed=1):
        self.g = torch.Generator().manual_seed(seed)
        self.targets = [torch.randn(s, generator=self.g, dtype=dtype) for s in SHAPES]

    def set(self, reference, *copies):
        """Set .grad of `reference` and of every list in `copies` to the gradient at `reference`."""
        for i, (w, target, scale) in enumerate(zip(reference, self.targets, GRAD_SCALES)):
            noise = 0.5 * torch.randn(w.shape, generator=self.g, dtype=w.dtype)
            grad = scale * (w.detach() - target + noise)
            for params in (reference, *copies):
                params[i].grad = grad.clone()


def _groups(params, lr):
    # two param groups, the second with its own lr, to check that groups are honoured
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}]


def _id(case):
    cls, hyper = case
    return "-".join([cls.__name__, *(f"{k}={v}" for k, v in hyper.items())])


# every setting in float64, and each optimizer's last setting in float32; both measured bit-identical to torch,
# float32 gets 1e-5 to leave room for another CPU's vector kernels
CASES = [pytest.param(case, torch.float64, 1e-6, id=f"{_id(case)}-float64") for case in SETTINGS] + [
    pytest.param((cls, hyper), torch.float32, 1e-5, id=f"{_id((cls, hyper))}-float32")
    for cls, hyper in dict(SETTINGS).items()
]


@pytest.mark.parametrize("case, dtype, tol", CASES)
def test_scratch_optimizer_matches_torch_every_step(case, dtype, tol):
    cls, hyper = case
    ours, theirs = _params(dtype), _params(dtype)
    opt_ours = cls(_groups(ours, hyper["lr"]), **hyper)
    opt_theirs = TWINS[cls](_groups(theirs, hyper["lr"]), **hyper)
    grads = _Gradients(dtype)
    start = [w.detach().clone() for w in ours]
    for step in range(100):
        grads.set(ours, theirs)
        opt_ours.step()
        opt_theirs.step()
        diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
        assert diff <= tol, f"step {step}: max |ours - torch| = {diff:g}"
    assert all((w - w0).abs().max() > 1e-3 for w, w0 in zip(ours, start)), "the parameters should have moved"


def test_weight_decay_is_l2_on_the_gradient():
    # one AdaGrad step from s = 0 moves every coordinate by lr * sign(g + wd * w) (up to eps)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    w.grad = torch.tensor([-0.5, 0.5, -10.0], dtype=torch.float64)  # g + 1.0 * w = [0.5, -1.5, -7]
    AdaGrad([w], lr=0.1, weight_decay=1.0).step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9, 3.1], dtype=torch.float64))
    torch.testing.assert_close(w.grad, torch.tensor([-0.5, 0.5, -10.0], dtype=torch.float64))  # .grad untouched


def _steps(opt, params, grads, n):
    for _ in range(n):
        grads.set(params)
        opt.step()


@pytest.mark.parametrize("via", ["state_dict", "checkpoint"])
@pytest.mark.parametrize("cls", SCRATCH, ids=lambda c: c.__name__)
def test_resuming_from_saved_state_equals_an_uninterrupted_run(cls, via, tmp_path):
    hyper = {"lr": 0.05, "weight_decay": 0.01}
    uninterrupted = _params()
    _steps(cls(uninterrupted, **hyper), uninterrupted, _Gradients(), 20)

    first = _params()
    opt = cls(first, **hyper)
    grads = _Gradients()
    _steps(opt, first, grads, 10)
    for state in opt.state_dict()["state"].values():
        assert state and all(isinstance(v, (torch.Tensor, int, float)) for v in state.values())

    resumed = [torch.nn.Parameter(w.detach().clone()) for w in first]
    fresh = cls(resumed, **hyper)
    if via == "state_dict":
        fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    else:
        save_checkpoint(tmp_path / "c.safetensors", torch.nn.ParameterList(first), opt, save_rng=False)
        Checkpoint(tmp_path / "c.safetensors").load_optimizer(fresh)
    _steps(fresh, resumed, grads, 10)
    for a, b in zip(resumed, uninterrupted):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "cls, hyper, name",
    [
        (SGD, {"lr": 0.0}, "lr"),
        (Momentum, {"lr": -0.1}, "lr"),
        (Momentum, {"lr": 0.1, "beta": 1.0}, "beta"),
        (AdaGrad, {"eps": 0.0}, "eps"),
        (AdaGrad, {"weight_decay": -1e-4}, "weight_decay"),
        (RMSProp, {"gamma": 1.5}, "gamma"),
        (Adadelta, {"rho": -0.1}, "rho"),
        (Adam, {"beta1": float("nan")}, "beta1"),
        (Adam, {"beta2": 1.0}, "beta2"),
    ],
)
def test_bad_hyperparameters_raise_config_error_naming_them(cls, hyper, name):
    with pytest.raises(ConfigError, match=rf"^{cls.__name__}: {name}\b.*got"):
        cls(_params(), **hyper)


def test_optimizer_names_are_lowercase_with_dashes():
    for name in OPTIMIZERS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
    for scratch in ("sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam"):
        assert f"{scratch}-scratch" in OPTIMIZERS


BUILT = {
    "sgd-scratch": SGD,
    "momentum-scratch": Momentum,
    "adagrad-scratch": AdaGrad,
    "rmsprop-scratch": RMSProp,
    "adadelta-scratch": Adadelta,
    "adam-scratch": Adam,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_build_optimizer_builds_every_registered_name(name):
    TrainConfig(optimizer=name).validate()
    params = _params()
    before = [w.detach().clone() for w in params]
    opt = build_optimizer(name, params, lr=0.01)
    assert isinstance(opt, BUILT.get(name, torch.optim.Optimizer))
    assert opt.param_groups[0]["lr"] == 0.01
    _Gradients().set(params)
    opt.step()
    assert all(not torch.equal(w, w0) for w, w0 in zip(params, before))
    if name != "sgd-scratch":  # the book's plain SGD refuses weight decay
        assert build_optimizer(name, _params(), lr=0.01, weight_decay=0.1).param_groups[0]["weight_decay"] == 0.1


def test_momentum_flag_maps_to_beta_and_is_refused_where_unused():
    assert build_optimizer("momentum-scratch", _params(), lr=0.1).param_groups[0]["beta"] == 0.9  # book default
    assert build_optimizer("momentum-scratch", _params(), lr=0.1, momentum=0.5).param_groups[0]["beta"] == 0.5
    assert build_optimizer("sgd", _params(), lr=0.1, momentum=0.5).param_groups[0]["momentum"] == 0.5
    assert build_optimizer("sgd", _params(), lr=0.1).param_groups[0]["momentum"] == 0.0
    with pytest.raises(ConfigError, match="beta"):
        build_optimizer("momentum-scratch", _params(), lr=0.1, momentum=1.2)
    for name in ("adagrad-scratch", "rmsprop-scratch", "adadelta-scratch", "adam-scratch", "adam"):
        with pytest.raises(ConfigError, match="--momentum"):
            build_optimizer(name, _params(), lr=0.1, momentum=0.9)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'"):
        build_optimizer("adamm", _params(), lr=0.1)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.03),
        lambda ps: Momentum(ps, lr=0.01),
        lambda ps: AdaGrad(ps, lr=0.5),
        lambda ps: RMSProp(ps, lr=0.03),
        lambda ps: Adadelta(ps, eps=1e-3),  # eps sets the first steps' size, sqrt(eps); 1e-6 would take far longer
        lambda ps: Adam(ps, lr=0.1),
    ],
    ids=["SGD", "Momentum", "AdaGrad", "RMSProp", "Adadelta", "Adam"],
)
def test_scratch_optimizer_trains_linear_regression(make):
    x, y, x_test, y_test, w_true, b_true = synthetic_linear()
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    opt = make(net.parameters())
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(10):
            opt.zero_grad()
            F.mse_loss(net(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        assert F.mse_loss(net(x_test), y_test).item() < 0.01
        torch.testing.assert_close(net.weight.squeeze(0), w_true, rtol=0, atol=0.05)


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "sgd-scratch"])
def test_divekits_optimizers_step_like_the_classes_they_derive_from(name):
    """build_optimizer's classes skip torch's dynamo guards (ops.optim.eager) and change nothing else:
    the same parameters and state as the class itself, bit for bit, over steps, zero_grad and a reload."""
    torch.manual_seed(0)
    nets = [torch.nn.Linear(5, 3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    ours = build_optimizer(name, nets[0].parameters(), lr=0.01, weight_decay=1e-3)
    base = type(ours).__mro__[1]
    assert isinstance(ours, base) and type(ours).__name__ == base.__name__
    accepted = inspect.signature(base.__init__).parameters
    theirs = base(nets[1].parameters(), **{k: v for k, v in ours.defaults.items() if k in accepted})
    for _ in range(3):
        X = torch.randn(8, 5)
        for net, opt in zip(nets, (ours, theirs)):
            opt.zero_grad()
            net(X).square().mean().backward()
            opt.step()
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)
    ours.load_state_dict(theirs.state_dict())
    assert str(ours.state_dict()) == str(theirs.state_dict())


def test_building_and_stepping_an_optimizer_does_not_import_dynamo():
    # torch._dynamo costs ~1.1 s of start-up; torch's guards import it on their first call
    import subprocess
    import sys

    code = ("import sys, torch\nfrom divekit.ops.optim import OPTIMIZERS, build_optimizer\n"
            "for name in OPTIMIZERS:\n"
            "    net = torch.nn.Linear(3, 1)\n"
            "    opt = build_optimizer(name, net.parameters(), lr=0.1)\n"
            "    net(torch.ones(2, 3)).sum().backward(); opt.step(); opt.zero_grad()\n"
            "    opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "sgd-scratch"])
def test_eager_classes_skip_the_guards_after_torchs_class_ran_and_pickle(name):
    """The first instance of a torch optimizer hooks its class's step for the profiler; eager() built after
    that must still unwrap the guard (not inherit it), and its instances pickle like torch's."""
    import io
    import pickle

    from divekit.ops.optim import eager

    net = torch.nn.Linear(3, 1)
    base = type(build_optimizer(name, net.parameters(), lr=0.1)).__mro__[1]
    base([torch.nn.Parameter(torch.ones(1))], lr=0.1)  # hooks base.step
    eager.cache_clear()
    opt = build_optimizer(name, net.parameters(), lr=0.1)
    net(torch.ones(2, 3)).sum().backward()
    opt.step()
    if base.__module__.startswith("torch.optim"):  # divekit's from-scratch steps have no guard to remove
        step = inspect.getattr_static(type(opt), "step")
        while hasattr(step, "__wrapped__") and step.__code__.co_qualname != "_unguarded.<locals>.step":
            step = step.__wrapped__
        assert step.__code__.co_qualname == "_unguarded.<locals>.step"
    again = pickle.loads(pickle.dumps(opt))
    assert type(again) is type(opt) and str(again.state_dict()) == str(opt.state_dict())
    buffer = io.BytesIO()
    torch.save(opt, buffer)
    buffer.seek(0)
    assert str(torch.load(buffer, weights_only=False).state_dict()) == str(opt.state_dict())
