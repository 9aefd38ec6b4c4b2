"""The "gan" training task (book 20.1-20.2): the alternating updates of a generator and a discriminator.

The model is a divekit.models.gan.GAN (it names this task itself, so a DCGAN trains on any image
dataset); a batch is real examples first (labels, if any, are ignored). Each training step:

1. draw z ~ N(0, I) and generate G(z);
2. update D on the real batch (label 1) and G(z) detached (label 0): only D gets gradients;
3. update G on -log D(G(z)) with the updated D: gradients flow through D into G only.

One optimizer holds both networks as two parameter groups (GAN.param_groups: D at lr x d_lr_mult);
each step leaves the other network's gradients empty, so the optimizer skips it: the same updates
as the book's two optimizers, and one optimizer state for checkpoints and --resume.

Metrics, on the training batches only (see `evaluates`): loss_d and loss_g (the players' losses), d_real and d_fake (D's mean probability of
"real" on real and on generated examples; 0.5 for both when G has won) and loss = loss_d + loss_g,
the figure the trainer watches for NaN.
"""

from __future__ import annotations

import torch

from ..core.dist import unwrap
from ..core.errors import ConfigError
from ..models.gan import discriminator_loss, generator_loss
from .base import Task, register_task


@register_task
class GANTask(Task):
    """Real examples -> the two players' losses; updates D, then G, on every batch."""

    name = "gan"
    manual_update = True
    # no held-out evaluation: the losses on test images judge neither player, and in eval mode D's
    # batch norm would use running statistics mixed from real and generated batches
    evaluates = False

    def default_loss(self, outputs, targets, training):
        real_logits, fake_logits = outputs
        return discriminator_loss(real_logits, fake_logits)

    def param_groups(self, model, config):
        gan = unwrap(model)
        if gan.beta1 is not None and config.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"{config.model} sets Adam's beta1 to {gan.beta1} (book 20.2): train it with "
                              f"--optimizer adam (or adamw), not {config.optimizer}")
        return gan.param_groups(config.lr)

    @staticmethod
    def _sums(loss_d, loss_g, real_logits, fake_logits, n: int) -> dict[str, torch.Tensor]:
        loss_d, loss_g = loss_d.detach(), loss_g.detach()
        return {"loss": (loss_d + loss_g) * n, "loss_d": loss_d * n, "loss_g": loss_g * n,
                "d_real": torch.sigmoid(real_logits.detach()).sum(), "d_fake": torch.sigmoid(fake_logits.detach()).sum()}

    def step(self, model, batch):
        """Both losses on a batch, without an update (what the preflight check runs)."""
        gan = unwrap(model)
        X = batch[0]
        n = X.shape[0]
        fake = gan.generate(gan.latent(n))
        real_logits, fake_logits = gan.discriminator(X), gan.discriminator(fake)
        loss_d, loss_g = discriminator_loss(real_logits, fake_logits), generator_loss(fake_logits)
        return loss_d + loss_g, self._sums(loss_d, loss_g, real_logits, fake_logits, n), n

    def train_step(self, model, batch, optimizer):
        gan = unwrap(model)
        X = batch[0]
        n = X.shape[0]
        fake = gan.generate(gan.latent(n))  # G is unchanged by D's step, so both updates use this graph
        # D's update: the generated batch is detached, so only D's parameters get gradients
        optimizer.zero_grad(set_to_none=True)
        real_logits, fake_logits = gan.discriminator(X), gan.discriminator(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        loss_d.backward()
        optimizer.step()  # G's parameters have no gradient: the optimizer skips them
        # G's update against the updated D: backward into G's parameters only
        optimizer.zero_grad(set_to_none=True)
        loss_g = generator_loss(gan.discriminator(fake))
        loss_g.backward(inputs=list(gan.generator.parameters()))
        optimizer.step()
        return self._sums(loss_d, loss_g, real_logits, fake_logits, n), n
