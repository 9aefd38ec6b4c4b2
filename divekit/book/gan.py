"""The book's basic GAN on its 2-D Gaussian (20.1): `divekit demo gan`.

The data is X = Z A + b with Z ~ N(0, I), so its distribution is N(b, A^T A); the generator is a
single Linear(2, 2), G(z) = z W + c, whose samples are N(c, W^T W): the GAN has learned the data
when c is close to the data's mean and W^T W to its covariance. The demo trains `gan-toy` with the
trainer (the `gan` task's alternating updates), reports both errors and plots the generated points
beside the real ones at a few epochs.

`update_D` and `update_G` are the book's two update functions, with an optimizer for each network;
the tests check that the trainer's single optimizer over two parameter groups makes the same updates.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.rundir import SAMPLE_POINTS
from ..data.registry import load_dataset
from ..models.gan import GAN, discriminator_loss, generator_loss
from ..train.api import fit, resolve_config


def update_D(X: torch.Tensor, Z: torch.Tensor, net_D, net_G, trainer_D) -> float:
    """The book's discriminator step: real X labelled 1, G(Z) (detached) labelled 0; returns D's loss."""
    trainer_D.zero_grad()
    real_Y, fake_Y = net_D(X), net_D(net_G(Z).detach())
    loss_D = discriminator_loss(real_Y, fake_Y, scratch=True)
    loss_D.backward()
    trainer_D.step()
    return float(loss_D.detach())


def update_G(Z: torch.Tensor, net_D, net_G, trainer_G) -> float:
    """The book's generator step: G(Z) labelled 1 by the (just updated) D; returns G's loss."""
    trainer_G.zero_grad()
    loss_G = generator_loss(net_D(net_G(Z)), scratch=True)
    loss_G.backward()
    trainer_G.step()
    return float(loss_G.detach())


def moment_errors(model: GAN, real: torch.Tensor, n: int = 10_000, seed: int = 0) -> dict[str, float]:
    """How far the generated distribution is from the real data's: the largest absolute error of
    the mean and of the covariance, and the covariance's error relative to its norm (Frobenius)."""
    fake = model.sample(n, torch.Generator().manual_seed(seed)).double()
    real = real.double()
    cov_real, cov_fake = torch.cov(real.T), torch.cov(fake.T)
    return {
        "mean_error": float((fake.mean(0) - real.mean(0)).abs().max()),
        "cov_error": float((cov_fake - cov_real).abs().max()),
        "cov_rel_error": float(torch.linalg.norm(cov_fake - cov_real) / torch.linalg.norm(cov_real)),
    }


def toy_gan_demo(out: Path, epochs: int | None = None, seed: int = 0, threads: int | None = None) -> dict:
    """Train gan-toy on gaussian-2d with the book's settings (run folder `out/gan-toy`); returns the
    real and generated moments, their errors, the last epoch's metrics and the plot of real vs
    generated points."""
    cfg = resolve_config(model="gan-toy", seed=seed, device="cpu", epochs=epochs, threads=threads)
    data = load_dataset("gaussian-2d", batch_size=cfg.batch_size, seed=seed)
    result = fit(cfg.model, data, cfg, run_dir=Path(out) / "gan-toy", progress=False)
    real = data.train.tensors[0]
    fake = result.model.sample(10_000, torch.Generator().manual_seed(seed))
    return {
        "epochs": cfg.epochs,
        "real_mean": [round(v, 4) for v in real.mean(0).tolist()],
        "generated_mean": [round(v, 4) for v in fake.mean(0).tolist()],
        "real_cov": [[round(v, 4) for v in row] for row in torch.cov(real.T).tolist()],
        "generated_cov": [[round(v, 4) for v in row] for row in torch.cov(fake.T).tolist()],
        **{k: round(v, 4) for k, v in moment_errors(result.model, real, seed=seed).items()},
        **{k: round(result.metrics[f"train_{k}"], 4) for k in ("loss_d", "loss_g", "d_real", "d_fake")},
        "seconds": result.metrics["seconds"],
        "plot": str(result.run_dir / SAMPLE_POINTS),
    }
