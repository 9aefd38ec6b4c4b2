"""The book's small experiments as one command each: `divekit demo NAME [--out DIR]`.

Each demo writes its plots into the output folder and returns its figures as a dict (printed as
JSON with --json). They are the experiments the book shows as figures; the tests assert what the
figures show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..core.errors import ConfigError, did_you_mean
from ..data.registry import load_dataset
from ..data.text import load_corpus, ngram_freqs, zipf_exponent, zipf_plot
from ..models.linear import squared_loss
from ..models.registry import create_model
from ..ops import optim
from ..ops.schedules import build_schedule
from ..train.api import fit
from ..train.config import TrainConfig
from ..train.trainer import Callback
from .attention import nadaraya_watson_demo, positional_encoding_plot
from .augmentation import augmentation_grids, book_image
from .autoregression import autoregression_demo
from .gan import toy_gan_demo
from .generalization import polynomial_experiment, weight_decay_experiment
from .logistic import hours_to_pass_demo
from .stability import (
    ACTIVATIONS,
    activation_plots,
    matrix_product_demo,
    plot_sigmoid_gradient,
    vanishing_gradient_demo,
)

DEMOS: dict[str, Callable[..., dict]] = {}


def demo(name: str):
    def deco(fn):
        DEMOS[name] = fn
        return fn

    return deco


@demo("activations")
def activations(out: Path) -> dict:
    """ReLU, sigmoid and tanh with their gradients (book 5.1), then leaky ReLU, ELU, SELU, PReLU,
    GELU and SiLU from scratch (divekit.ops.activations)."""
    return {"plot": str(activation_plots(out / "activations.png")), "activations": list(ACTIVATIONS)}


@demo("stability")
def stability(out: Path) -> dict:
    """Exploding products of random matrices and vanishing sigmoid gradients (book 5.4)."""
    product = matrix_product_demo()
    sigmoid, relu = vanishing_gradient_demo(20, "sigmoid"), vanishing_gradient_demo(20, "relu")
    return {
        "product_of_100_matrices_max_abs": float(product.abs().max()),
        "first_layer_grad_norm_sigmoid_depth20": float(sigmoid[0]),
        "first_layer_grad_norm_relu_depth20": float(relu[0]),
        "plot": str(plot_sigmoid_gradient(out / "sigmoid_gradient.png")),
    }


@demo("polynomial")
def polynomial(out: Path) -> dict:
    """Fitting a cubic with 4, 2 and 20 features: normal fit, underfitting, overfitting (book 3.6)."""
    return polynomial_experiment(out)


@demo("weight-decay")
def weight_decay(out: Path) -> dict:
    """High-dimensional linear regression with lambda = 0 and 3, from scratch and concise (book 3.7)."""
    return weight_decay_experiment(out)


@demo("schedules")
def schedules(out: Path, epochs: int = 30, steps_per_epoch: int = 20) -> dict:
    """Every learning-rate schedule over 30 epochs, as lr factor vs epoch (book 12.11); plateau is
    driven by a loss that improves for 10 epochs and then stalls."""
    import matplotlib.pyplot as plt

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    settings = {"step": {"step_size": 10, "gamma": 0.5}, "multistep": {"milestones": [15, 25], "gamma": 0.3},
                "exponential": {"gamma": 0.9}, "cosine": {"warmup_epochs": 5}, "onecycle": {},
                "plateau": {"factor": 0.5, "patience": 3}}
    stalled_loss = [max(1.0 / (e + 1), 0.1) for e in range(epochs)]  # improves until epoch 10, then flat
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, args in settings.items():
        args = dict(args)
        warmup = args.pop("warmup_epochs", 0.0)
        s = build_schedule(name, epochs, warmup, **args)
        ts, factors = [], []
        for e in range(epochs):
            for i in range(steps_per_epoch):
                ts.append(e + i / steps_per_epoch)
                factors.append(s.factor(e, i, steps_per_epoch))
            s.on_epoch_end(stalled_loss[e])
        ax.plot(ts, factors, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("lr / base lr")
    ax.legend()
    ax.set_title("learning-rate schedules")
    return {"plot": str(save_figure(fig, out / "schedules.png")), "settings": settings}


# the book's settings for each optimizer on airfoil (chapter 12), batch size 10, 2 epochs
AIRFOIL_OPTIMIZERS = {
    "sgd-scratch": {"lr": 0.05},
    "momentum-scratch": {"lr": 0.01, "beta": 0.9},
    "adagrad-scratch": {"lr": 0.1},
    "rmsprop-scratch": {"lr": 0.01, "gamma": 0.9},
    "adadelta-scratch": {"rho": 0.9, "eps": 1e-5},
    "adam-scratch": {"lr": 0.01},
}


@demo("optimizers")
def optimizers(out: Path, data_dir: str | None = None, epochs: int = 2, every: int = 20) -> dict:
    """The book's linear model on airfoil with each optimizer from scratch; the loss on the whole
    training set every 20 minibatches, all curves in one plot (book chapter 12)."""
    import matplotlib.pyplot as plt

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    classes = {"sgd-scratch": optim.SGD, "momentum-scratch": optim.Momentum, "adagrad-scratch": optim.AdaGrad,
               "rmsprop-scratch": optim.RMSProp, "adadelta-scratch": optim.Adadelta, "adam-scratch": optim.Adam}

    class FullLoss(Callback):
        """Loss over the whole training set every `every` steps, as the book's train_ch11 plots it."""

        def __init__(self, x, y):
            self.x, self.y, self.points = x, y, []

        def on_step_end(self, trainer, step):
            if (step + 1) % every == 0:
                with torch.no_grad():
                    loss = squared_loss(trainer.model(self.x), self.y).item()
                self.points.append((trainer.epoch + (step + 1) / len(trainer.data.train), loss))

    results, fig = {}, plt.figure(figsize=(7, 4))
    for name, hparams in AIRFOIL_OPTIMIZERS.items():
        data = load_dataset("airfoil", batch_size=10, data_dir=data_dir)
        x, y = data.train.tensors
        cfg = TrainConfig(model="linear-regression-scratch", data="airfoil", epochs=epochs, batch_size=10,
                          lr=hparams.get("lr", 1.0), device="cpu", log_every=10_000, plot=False)
        torch.manual_seed(0)
        model = create_model("linear-regression-scratch", context=data.context)
        curve = FullLoss(x, y)
        fit(model, data, cfg, run_dir=False, progress=False, callbacks=[curve],
            optimizer=classes[name](model.parameters(), **hparams))
        results[name] = {"final_loss": round(curve.points[-1][1], 4), "hparams": hparams}
        plt.plot(*zip(*curve.points), label=name)
    plt.xlabel("epoch")
    plt.ylabel("training loss")
    plt.ylim(0.22, 0.5)
    plt.legend()
    return {"optimizers": results, "plot": str(save_figure(fig, out / "optimizers.png"))}


@demo("sequence")
def sequence(out: Path) -> dict:
    """An MLP autoregressive model of a noisy sine: one-step, multi-step and k-step-ahead predictions (book 9.1)."""
    return autoregression_demo(out)


@demo("logistic")
def logistic(out: Path) -> dict:
    """Logistic regression on hours studied -> passed (20 students): the MLE fit and the sigmoid with its 0.5 line."""
    return hours_to_pass_demo(out)


@demo("zipf")
def zipf(out: Path) -> dict:
    """Word, bigram and trigram frequencies of The Time Machine against rank, log-log (book 9.3)."""
    corpus, vocab = load_corpus("time-machine", token="word")
    words = vocab.to_tokens(corpus.tolist())
    top = ngram_freqs(words, 1)[:10]
    return {
        "tokens": len(words),
        "top_words": [[w[0], c] for w, c in top],
        **{f"zipf_exponent_{n}gram": round(zipf_exponent(ngram_freqs(words, n)), 3) for n in (1, 2, 3)},
        "plot": str(zipf_plot(words, out / "zipf.png")),
    }


def run_demo(name: str, out: str | Path, **kwargs) -> dict:
    if name not in DEMOS:
        raise ConfigError(f"unknown demo {name!r}.{did_you_mean(name, DEMOS)} Known: {', '.join(sorted(DEMOS))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {"demo": name, **DEMOS[name](out, **kwargs)}


@demo("attention")
def attention(out: Path) -> dict:
    """Nadaraya-Watson kernel regression: average pooling, the non-parametric and the parametric
    (learned w) estimators with their attention heatmaps (book 11.2), and the sinusoidal
    positional encoding's columns 6-9 (book 11.6)."""
    result = nadaraya_watson_demo(out)
    result["plots"]["positional_encoding"] = str(positional_encoding_plot(out / "positional_encoding.png"))
    return result


@demo("augment")
def augment(out: Path, data_dir: str | None = None, seed: int = 0) -> dict:
    """The book's augmentations of img/cat1.jpg: flips, random resized crops, color jitter (book 14.1)."""
    image = book_image("cat1.jpg", data_dir)
    return {"image": str(image), "seed": seed, "plots": augmentation_grids(image, out, seed=seed)}


@demo("gan")
def gan(out: Path, epochs: int | None = None, seed: int = 0, threads: int | None = None) -> dict:
    """The basic GAN on the book's 2-D Gaussian: generated vs real mean and covariance, and the
    points at a few epochs (book 20.1)."""
    return toy_gan_demo(out, epochs=epochs, seed=seed, threads=threads)
