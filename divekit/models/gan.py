"""Chapter 20 (book 20.1-20.2): generative adversarial networks, the basic GAN and DCGAN.

A GAN is two networks trained against each other: the generator G maps noise z ~ N(0, I) to
samples, the discriminator D maps a sample to a logit, "real" (1) or "generated" (0). D minimizes
the cross-entropy of telling them apart; G minimizes the cross-entropy of D calling its samples
real (the non-saturating loss, -log D(G(z)), book 20.1.1). `GAN` holds both; the `gan` task
(divekit.tasks.gan) makes the alternating updates.

The losses are written twice: from the formula (`sigmoid_bce_scratch`) and with
F.binary_cross_entropy_with_logits; the tests check that they agree, values and gradients.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ConfigError
from .registry import register_model


def sigmoid_bce_scratch(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean of -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] over the logits x, for a label y.

    Written as max(x, 0) - x y + log(1 + exp(-|x|)), which never takes the log of 0 or exp of a large x.
    """
    return (logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))).mean()


def _bce(logits: torch.Tensor, target: float, scratch: bool) -> torch.Tensor:
    if scratch:
        return sigmoid_bce_scratch(logits, target)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, scratch: bool = False) -> torch.Tensor:
    """D's loss (book 20.1): the cross-entropy of labelling real data 1 and generated data 0, averaged."""
    return (_bce(real_logits, 1.0, scratch) + _bce(fake_logits, 0.0, scratch)) / 2


def generator_loss(fake_logits: torch.Tensor, scratch: bool = False) -> torch.Tensor:
    """G's loss (book 20.1.1): -log D(G(z)), the cross-entropy of D labelling generated data 1."""
    return _bce(fake_logits, 1.0, scratch)


class GAN(nn.Module):
    """A generator and a discriminator trained as the `gan` task.

    `forward(z)` is D(G(z)), the discriminator's logits for generated samples (what the model zoo
    and `divekit summary` run); `generate(z)` is G(z) and `sample(n)` draws z and generates.
    `param_groups(lr)` gives the optimizer two groups: the generator's parameters at `lr` and the
    discriminator's at `lr * d_lr_mult` (one optimizer, each parameter with its own
    moments: the same updates as the book's two optimizers); `beta1` replaces Adam's 0.9 (DCGAN: 0.5).
    """

    task = "gan"  # the training task, whatever the dataset's (a DCGAN trains on a classification dataset)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int, *,
                 d_lr_mult: float = 1.0, beta1: float | None = None):
        super().__init__()
        if latent_dim < 1 or d_lr_mult <= 0:
            raise ValueError(f"latent_dim must be >= 1 and d_lr_mult > 0, got {latent_dim} and {d_lr_mult}")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.d_lr_mult, self.beta1 = latent_dim, d_lr_mult, beta1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.generator(z))  # (B,)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n noise vectors z ~ N(0, I), (n, latent_dim), on the model's device."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else device)
        return z.to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n generated samples in eval mode (batch norm uses its running statistics)."""
        was_training = self.training
        self.eval()
        try:
            return self.generator(self.latent(n, generator))
        finally:
            self.train(was_training)

    def param_groups(self, lr: float) -> list[dict]:
        extra = {} if self.beta1 is None else {"betas": (self.beta1, 0.999)}
        return [  # the generator first: the lr a run reports (group 0's) is the --lr it was given
            {"params": list(self.generator.parameters()), "lr": lr, "name": "generator", **extra},
            {"params": list(self.discriminator.parameters()), "lr": lr * self.d_lr_mult, "name": "discriminator", **extra},
        ]


class ToyDiscriminator(nn.Module):
    """The book's 2 -> 5 -> 3 -> 1 tanh MLP (20.1.2), returning one logit per point."""

    def __init__(self, num_inputs: int, hidden: Sequence[int] = (5, 3)):
        super().__init__()
        sizes = [num_inputs, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, X):
        return self.net(X).squeeze(-1)  # (B,)


@register_model("gan-toy", defaults={"data": "gaussian-2d", "batch_size": 8, "epochs": 20, "optimizer": "adam",
                                      "lr": 0.005}, tags=("gan", "generative"))
def gan_toy(in_shape=(2,), latent_dim: int = 2, hidden: Sequence[int] = (5, 3), d_lr_mult: float = 10.0):
    """The book's basic GAN (20.1): G a single Linear(2, 2), D a 2-5-3-1 tanh MLP; lr_D = 10 lr_G
    (0.05 and 0.005), every weight drawn from N(0, 0.02)."""
    if len(tuple(in_shape)) != 1:
        raise ConfigError(f"gan-toy generates points (in_shape (d,)), got in_shape {tuple(in_shape)}: "
                          "train it on gaussian-2d, or dcgan on images")
    d = int(in_shape[0])
    model = GAN(nn.Linear(latent_dim, d), ToyDiscriminator(d, hidden), latent_dim, d_lr_mult=d_lr_mult)
    for w in model.parameters():
        nn.init.normal_(w, 0.0, 0.02)
    return model


class Generator(nn.Module):
    """DCGAN's generator (book 20.2) for H x H images, H a multiple of 4: z (B, latent) is a 1 x 1
    map, a transposed convolution of kernel H/4 grows it to H/4 x H/4, two of kernel 4 and stride 2
    double it twice; batch norm and ReLU after each but the last, whose tanh is mapped to the data's
    [0, 1] pixel range."""

    def __init__(self, latent_dim: int, channels: int, size: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (latent_dim, 1, 1)),  # (B, latent) -> (B, latent, 1, 1)
            _g_block(latent_dim, 2 * width, kernel=size // 4, stride=1, padding=0),  # (B, 2w, H/4, H/4)
            _g_block(2 * width, width),  # (B, w, H/2, H/2)
            nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False),  # (B, C, H, W)
        )

    def forward(self, z):
        return torch.tanh(self.net(z)) / 2 + 0.5  # the book's tanh output in (-1, 1), as pixels in (0, 1)


def _g_block(c_in: int, c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def _d_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class Discriminator(nn.Module):
    """DCGAN's discriminator (book 20.2), the generator's mirror: pixels centred to [-1, 1], two
    convolutions of stride 2 with batch norm and leaky ReLU (slope 0.2) halve H twice, one of kernel
    H/4 gives the logit."""

    def __init__(self, channels: int, size: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            _d_block(channels, width),  # (B, w, H/2, H/2)
            _d_block(width, 2 * width),  # (B, 2w, H/4, H/4)
            nn.Conv2d(2 * width, 1, size // 4, bias=False),  # (B, 1, 1, 1)
        )

    def forward(self, X):
        return self.net(2 * X - 1).flatten()  # (B,)


@register_model("dcgan", defaults={"data": "fashion-mnist", "batch_size": 256, "epochs": 20, "optimizer": "adam",
                                    "lr": 0.005}, tags=("gan", "generative"))
def dcgan(in_shape=(1, 28, 28), latent_dim: int = 100, width: int = 64, beta1: float = 0.5):
    """DCGAN (book 20.2) for C x H x H images (H a multiple of 4: 28 for Fashion-MNIST, 32 with --resize 32):
    a 100-d latent, transposed-convolution generator, convolutional discriminator, the book's Adam
    (lr 0.005 for both, beta1 = 0.5, batches of 256), weights from N(0, 0.02) and batch-norm scales
    from N(1, 0.02) (Radford et al.)."""
    if len(tuple(in_shape)) != 3 or in_shape[1] != in_shape[2] or in_shape[1] % 4 or in_shape[1] < 8:
        raise ConfigError(f"dcgan generates square images whose side is a multiple of 4 (e.g. 1 x 28 x 28), got "
                          f"in_shape {tuple(in_shape)}: use --resize 28 or 32")
    c, size = int(in_shape[0]), int(in_shape[1])
    model = GAN(Generator(latent_dim, c, size, width), Discriminator(c, size, width), latent_dim, beta1=beta1)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return model
