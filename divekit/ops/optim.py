"""Optimizers written from scratch (book chapter 12), as torch.optim.Optimizer subclasses.

Being Optimizer subclasses they plug into the trainer and its checkpoints like torch's own;
each `step` is the book's update written out by hand, and tests compare it with torch.optim.
Where the book leaves a detail open (where eps goes, how weight decay enters) we follow torch,
so that the scratch and built-in versions agree to rounding error:

- weight decay is an L2 penalty added to the gradient, g <- g + weight_decay * w;
- per-parameter state lives in `self.state[p]` as tensors (and the step count t as an int),
  so `state_dict()` and divekit's safetensors checkpoints carry it.
"""

from __future__ import annotations

import functools
import inspect
from functools import partial

import torch

from ..core.errors import ConfigError

# hyperparameter name -> (test, what is expected); every scratch optimizer validates through this table
_RULES = {
    "lr": (lambda x: x > 0, "must be positive (e.g. 0.01)"),
    "eps": (lambda x: x > 0, "must be positive (e.g. 1e-8): it keeps the division away from zero"),
    "weight_decay": (lambda x: x >= 0, "must be >= 0 (0 turns it off)"),
    **{
        decay: (lambda x: 0 <= x < 1, "is a decay rate and must be in [0, 1) (e.g. 0.9)")
        for decay in ("beta", "beta1", "beta2", "gamma", "rho")
    },
}


def _checked(optimizer: str, **hyper: float) -> dict[str, float]:
    """`hyper` as a param-group defaults dict, after raising ConfigError naming any value out of range."""
    for name, value in hyper.items():
        ok, expected = _RULES[name]
        if not ok(value):
            raise ConfigError(f"{optimizer}: {name} {expected}, got {value!r}")
    return hyper


def _loss(closure):
    """The loss from the optional closure that re-evaluates the model, as torch optimizers do."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _gradients(optimizer: torch.optim.Optimizer):
    """(parameter, g, its state, its group) for each parameter with a gradient; g includes the L2 term."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            if group.get("weight_decay", 0):
                g = g.add(p, alpha=group["weight_decay"])  # g <- g + weight_decay * w (a new tensor: p.grad is kept)
            yield p, g, optimizer.state[p], group


class SGD(torch.optim.Optimizer):
    """Minibatch stochastic gradient descent: w <- w - lr * grad (book 3.4)."""

    def __init__(self, params, lr: float):
        super().__init__(params, _checked("SGD", lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, _, group in _gradients(self):
            w -= group["lr"] * g
        return loss


class Momentum(torch.optim.Optimizer):
    """SGD with momentum (book 12.6), the convention of torch.optim.SGD(momentum=beta), dampening 0.

    v_t = beta v_{t-1} + g_t;  w_t = w_{t-1} - lr v_t, with v_0 = 0.
    The book writes the same thing as v_t = beta v_{t-1} + g_{t,t-1} with the learning rate outside.
    """

    def __init__(self, params, lr: float, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, _checked("Momentum", lr=lr, beta=beta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, state, group in _gradients(self):
            if not state:
                state["v"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            v = state["v"]
            v.mul_(group["beta"]).add_(g)  # v <- beta v + g
            w.add_(v, alpha=-group["lr"])  # w <- w - lr v
        return loss


class AdaGrad(torch.optim.Optimizer):
    """AdaGrad (book 12.7): a per-coordinate learning rate that shrinks with the summed squared gradients.

    s_t = s_{t-1} + g_t^2;  w_t = w_{t-1} - lr g_t / (sqrt(s_t) + eps), with s_0 = 0.
    The book puts eps inside the root; like torch.optim.Adagrad we add it outside.
    """

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(params, _checked("AdaGrad", lr=lr, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, state, group in _gradients(self):
            if not state:
                state["s"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            s = state["s"]
            s.addcmul_(g, g)  # s <- s + g^2
            w.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-group["lr"])  # w <- w - lr g / (sqrt(s) + eps)
        return loss


class RMSProp(torch.optim.Optimizer):
    """RMSProp (book 12.8): AdaGrad with a leaky average of the squared gradients.

    s_t = gamma s_{t-1} + (1 - gamma) g_t^2;  w_t = w_{t-1} - lr g_t / (sqrt(s_t) + eps), with s_0 = 0.
    Equal to torch.optim.RMSprop(alpha=gamma), which also puts eps outside the root.
    """

    def __init__(self, params, lr: float = 0.01, gamma: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, _checked("RMSProp", lr=lr, gamma=gamma, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, state, group in _gradients(self):
            if not state:
                state["s"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            s, gamma = state["s"], group["gamma"]
            s.mul_(gamma).addcmul_(g, g, value=1 - gamma)  # s <- gamma s + (1 - gamma) g^2
            w.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-group["lr"])  # w <- w - lr g / (sqrt(s) + eps)
        return loss


class Adadelta(torch.optim.Optimizer):
    """Adadelta (book 12.9): RMSProp whose step size is a leaky average of the past squared updates.

    s_t = rho s_{t-1} + (1 - rho) g_t^2
    g'_t = sqrt(dx_{t-1} + eps) / sqrt(s_t + eps) * g_t
    w_t = w_{t-1} - lr g'_t
    dx_t = rho dx_{t-1} + (1 - rho) g'_t^2,  with s_0 = dx_0 = 0.
    The book has no lr (lr = 1, the default); torch.optim.Adadelta adds one, and so do we.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0):
        super().__init__(params, _checked("Adadelta", lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, state, group in _gradients(self):
            if not state:
                state["s"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                state["delta_x"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            s, delta_x, rho, eps = state["s"], state["delta_x"], group["rho"], group["eps"]
            s.mul_(rho).addcmul_(g, g, value=1 - rho)  # s <- rho s + (1 - rho) g^2
            g_prime = (delta_x + eps).sqrt_().div_((s + eps).sqrt_()).mul_(g)  # g' <- sqrt(dx + eps) / sqrt(s + eps) g
            w.add_(g_prime, alpha=-group["lr"])  # w <- w - lr g'
            delta_x.mul_(rho).addcmul_(g_prime, g_prime, value=1 - rho)  # dx <- rho dx + (1 - rho) g'^2
        return loss


class Adam(torch.optim.Optimizer):
    """Adam (book 12.10): momentum on the gradient and RMSProp on its square, both bias-corrected.

    v_t = beta1 v_{t-1} + (1 - beta1) g_t;  s_t = beta2 s_{t-1} + (1 - beta2) g_t^2
    v^_t = v_t / (1 - beta1^t);  s^_t = s_t / (1 - beta2^t)
    w_t = w_{t-1} - lr v^_t / (sqrt(s^_t) + eps),  with v_0 = s_0 = 0.
    Equal to torch.optim.Adam(betas=(beta1, beta2)); weight decay is L2 on the gradient (not AdamW's).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        hyper = _checked("Adam", lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        super().__init__(params, hyper)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for w, g, state, group in _gradients(self):
            if not state:
                state["t"] = 0  # a plain int: checkpoints keep it in their JSON header
                state["v"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                state["s"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            state["t"] += 1
            t, v, s = state["t"], state["v"], state["s"]
            beta1, beta2 = group["beta1"], group["beta2"]
            v.lerp_(g, 1 - beta1)  # v <- beta1 v + (1 - beta1) g, as v + (1 - beta1)(g - v) like torch
            s.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # s <- beta2 s + (1 - beta2) g^2
            # w <- w - lr v^ / (sqrt(s^) + eps), with v^ = v / (1 - beta1^t) and s^ = s / (1 - beta2^t);
            # the corrections are applied to the scalars, not to copies of v and s, as torch does
            denominator = (s.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
            w.addcdiv_(v, denominator, value=-group["lr"] / (1 - beta1**t))
        return loss


# how a torch optimizer loops over the parameters: auto (torch's default: foreach on CUDA, a
# for-loop on the CPU), a Python for-loop, foreach (one multi-tensor kernel per operation) or
# fused (one kernel for the whole update; SGD, Adam, AdamW and Adagrad, CUDA and CPU)
OPTIMIZER_IMPLS = ("auto", "for-loop", "foreach", "fused")


def _impl_kwargs(optimizer, impl: str) -> dict:
    """The foreach/fused keyword arguments of a torch optimizer class for `impl`."""
    if impl == "auto":
        return {}
    if impl not in OPTIMIZER_IMPLS:
        raise ConfigError(f"optimizer implementation must be one of {', '.join(OPTIMIZER_IMPLS)}, got {impl!r}")
    if not optimizer.__module__.startswith("torch.optim"):
        raise ConfigError(f"--optimizer-impl {impl} applies to torch's optimizers; {optimizer.__name__} is divekit's "
                          "from-scratch version (a plain loop over the parameters): drop the flag or use torch's")
    accepted = inspect.signature(optimizer.__init__).parameters
    if impl == "fused":
        if "fused" not in accepted:
            raise ConfigError(f"torch.optim.{optimizer.__name__} has no fused implementation in torch {torch.__version__}; "
                              "use --optimizer-impl foreach")
        return {"fused": True}
    return {"foreach": impl == "foreach"}


# torch's wrappers that keep torch.compile out of an optimizer's bookkeeping; each imports torch._dynamo
# (about 1.1 s and 200 MB of modules, pandas and sympy among them) on its first call
_DYNAMO_GUARDS = ("_disable_dynamo.<locals>.inner", "_use_grad_for_differentiable.<locals>._use_grad")
# every global and attribute name torch's _use_grad touches (torch 2.4-2.13): a wrapper that does more
# than set the grad mode and break the graph is kept as torch wrote it, never replaced by a copy of an
# older one
_USE_GRAD_NAMES = {"torch", "torch._dynamo", "_dynamo", "cast", "Optimizer", "is_grad_enabled", "set_grad_enabled",
                   "defaults", "graph_break"}


def _unguarded(method):
    """`method` without torch's dynamo guard (the same function, run eagerly), or None if it has none."""
    if getattr(method, "hooked", False):  # the profiler hook Optimizer.__init__ puts on the class's step
        method = method.__wrapped__  # (a class instantiated earlier): the new class gets its own hook
    code = getattr(method, "__code__", None)
    if code is None or code.co_qualname not in _DYNAMO_GUARDS or not hasattr(method, "__wrapped__"):
        return None
    raw = method.__wrapped__
    if code.co_qualname.startswith("_disable_dynamo"):
        return raw
    if not set(code.co_names) <= _USE_GRAD_NAMES:
        return None

    @functools.wraps(raw)
    def step(self, *args, **kwargs):  # what _use_grad does, less its torch._dynamo.graph_break() calls
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return raw(self, *args, **kwargs)

    return step


def _restore(optimizer: type[torch.optim.Optimizer], state: dict):
    """Unpickle an `eager(optimizer)` instance (its class is made at run time, so pickle cannot name it)."""
    obj = object.__new__(eager(optimizer))
    obj.__setstate__(state)
    return obj


@functools.cache
def eager(optimizer: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """`optimizer` as a subclass whose methods skip torch's torch.compile guards.

    torch wraps Optimizer.add_param_group, zero_grad, state_dict, load_state_dict and each step in
    guards that import torch._dynamo the first time they run: about 1.1 s of every training process
    here, more than a whole softmax-regression run on the digits trains. divekit never compiles an
    optimizer's bookkeeping, so its optimizers call the same functions unwrapped; the updates and the
    state are torch's, bit for bit (tests/ops/test_optim.py). A torch without these guards, or whose
    guards do more than this module knows of, gets the class back unchanged. Instances pickle (and
    `torch.save`) as torch's own would, and unpickle as the eager class.
    """
    methods = {}
    for name in dir(optimizer):
        raw = _unguarded(inspect.getattr_static(optimizer, name))
        if raw is not None:
            methods[name] = raw
    if not methods:
        return optimizer

    def __reduce_ex__(self, protocol):
        return _restore, (optimizer, self.__getstate__())

    return type(optimizer.__name__, (optimizer,), {**methods, "__reduce_ex__": __reduce_ex__, "__module__": __name__,
                                                  "__qualname__": f"eager({optimizer.__qualname__})",
                                                  "__doc__": optimizer.__doc__})


def _scratch_sgd(params, lr, momentum=0.0, weight_decay=0.0, impl="auto"):
    _impl_kwargs(SGD, impl)
    if momentum or weight_decay:
        raise ConfigError("sgd-scratch is the book's plain SGD: use --optimizer sgd for momentum or weight decay")
    return eager(SGD)(params, lr=lr)


def _build(
    optimizer, params, lr, momentum=0.0, weight_decay=0.0, impl="auto", *, momentum_as: str | None = None,
    default_momentum=0.0,
):
    """optimizer(params, lr, weight_decay), with --momentum passed as `momentum_as` (0 means default_momentum)
    and the implementation `impl` (see OPTIMIZER_IMPLS).

    An optimizer without a momentum hyperparameter refuses a nonzero --momentum rather than ignore it.
    """
    kwargs = {"lr": lr, "weight_decay": weight_decay, **_impl_kwargs(optimizer, impl)}
    if momentum_as is not None:
        kwargs[momentum_as] = momentum or default_momentum
    elif momentum:
        raise ConfigError(
            f"--momentum {momentum} is not used by {optimizer.__name__}: drop it, or use --optimizer sgd, "
            "momentum-scratch or rmsprop"
        )
    return eager(optimizer)(params, **kwargs)


# config name -> builder(params, lr, momentum, weight_decay); torch's own next to the scratch version
OPTIMIZERS = {
    "sgd": partial(_build, torch.optim.SGD, momentum_as="momentum"),
    "sgd-scratch": _scratch_sgd,
    "momentum-scratch": partial(_build, Momentum, momentum_as="beta", default_momentum=0.9),
    "adagrad": partial(_build, torch.optim.Adagrad),
    "adagrad-scratch": partial(_build, AdaGrad),
    "rmsprop": partial(_build, torch.optim.RMSprop, momentum_as="momentum"),
    "rmsprop-scratch": partial(_build, RMSProp),
    "adadelta": partial(_build, torch.optim.Adadelta),
    "adadelta-scratch": partial(_build, Adadelta),
    "adam": partial(_build, torch.optim.Adam),
    "adam-scratch": partial(_build, Adam),
    "adamw": partial(_build, torch.optim.AdamW),
}


def build_optimizer(name: str, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                    impl: str = "auto"):
    """An optimizer by its config name (see OPTIMIZERS); `impl` picks torch's for-loop, foreach or
    fused implementation (see OPTIMIZER_IMPLS)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr, momentum=momentum, weight_decay=weight_decay, impl=impl)
