"""GAN models (book 20.1-20.2): the losses from the formula against torch's, the toy GAN's and
DCGAN's networks, and the two parameter groups."""

import json

import pytest
import torch
import torch.nn.functional as F

from divekit.core.errors import ConfigError
from divekit.models import create_model
from divekit.models.gan import discriminator_loss, generator_loss, sigmoid_bce_scratch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_scratch_sigmoid_bce_matches_torch_in_value_and_gradient(target):
    logits = (torch.randn(64, generator=torch.Generator().manual_seed(0)) * 30).requires_grad_()  # |x| up to ~90
    ours = sigmoid_bce_scratch(logits, target)
    (g_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.isfinite(ours) and torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(g_ours, g_theirs, atol=1e-7)


def test_player_losses_from_scratch_and_with_torch_agree():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(16, generator=g).requires_grad_(), torch.randn(16, generator=g).requires_grad_()
    pairs = [(lambda scratch: discriminator_loss(real, fake, scratch=scratch), (real, fake)),
             (lambda scratch: generator_loss(fake, scratch=scratch), (fake,))]
    for loss, inputs in pairs:
        ours, theirs = loss(True), loss(False)
        assert torch.allclose(ours, theirs, atol=1e-6)
        for a, b in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(theirs, inputs)):
            assert torch.allclose(a, b, atol=1e-7)
    # an untrained D that says 0.5 everywhere: both losses are log 2
    zero = torch.zeros(4)
    assert discriminator_loss(zero, zero).item() == pytest.approx(0.693147, abs=1e-6)
    assert generator_loss(zero).item() == pytest.approx(0.693147, abs=1e-6)


def test_toy_gan_is_the_books_networks():
    torch.manual_seed(0)
    model = create_model("gan-toy", context={"in_shape": (2,)})
    assert isinstance(model.generator, torch.nn.Linear) and model.generator.weight.shape == (2, 2)
    assert sum(p.numel() for p in model.discriminator.parameters()) == (2 * 5 + 5) + (5 * 3 + 3) + (3 + 1)
    assert float(model.generator.weight.detach().std()) < 0.1  # N(0, 0.02) weights
    z = model.latent(7)
    assert z.shape == (7, 2) and model.generate(z).shape == (7, 2) and model(z).shape == (7,)
    groups = model.param_groups(0.005)
    assert [g["name"] for g in groups] == ["generator", "discriminator"]
    assert [g["lr"] for g in groups] == [0.005, pytest.approx(0.05)]  # the book's lr_G and lr_D
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter, once


@pytest.mark.parametrize("size", [28, 32])
def test_dcgan_generates_distinct_images_of_the_datas_shape_and_both_players_learn_from_them(size):
    torch.manual_seed(0)
    model = create_model("dcgan", context={"in_shape": (1, size, size), "num_classes": 10}, width=8)
    z = model.latent(16)
    assert z.shape == (16, 100)
    images = model.generate(z)
    assert images.shape == (16, 1, size, size)
    assert float(images.detach().min()) >= 0 and float(images.detach().max()) <= 1  # the data's [0, 1] pixels
    assert model.discriminator(images).shape == (16,)
    # each noise vector its own image: the per-pixel std over the samples is 5.1e-4 to 6.2e-4 untrained
    # (seeds 0-3, eval mode), 0 for a generator that ignores z
    samples = model.sample(16, torch.Generator().manual_seed(1))
    assert float(samples.std(0).mean()) > 2e-4
    assert torch.equal(samples, model.sample(16, torch.Generator().manual_seed(1)))  # the same noise, the same images
    # both players get a gradient in every parameter: G's through D's verdict on its images
    real = torch.rand(16, 1, size, size, generator=torch.Generator().manual_seed(2))
    players = {"generator": generator_loss(model.discriminator(images)),
               "discriminator": discriminator_loss(model.discriminator(real), model.discriminator(images.detach()))}
    for name, loss in players.items():
        params = dict(getattr(model, name).named_parameters())
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        assert not [k for k, g in zip(params, grads) if g is None or not bool(g.abs().sum() > 0)], name
    assert model.param_groups(0.002)[0]["betas"] == (0.5, 0.999)  # book 20.2: Adam's beta1 = 0.5
    first = model.generator.net[1][0]
    assert first.kernel_size == (size // 4, size // 4)  # 1 x 1 -> H/4 x H/4, then two doublings


def test_dcgan_refuses_images_it_cannot_generate():
    with pytest.raises(ConfigError, match="multiple of 4.*--resize"):
        create_model("dcgan", context={"in_shape": (1, 30, 30)})
    with pytest.raises(ConfigError, match="gan-toy generates points"):
        create_model("gan-toy", context={"in_shape": (1, 28, 28)})


def test_summary_runs_a_gan_on_its_noise(capsys):
    from divekit.models.summary import summary_main

    assert summary_main("dcgan", json=True) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["input_shape"] == [100]  # z, for the 1 x 28 x 28 images it generates
    assert report["total_params"] == 759_680 + 138_752  # generator + discriminator
