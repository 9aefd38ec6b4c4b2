"""Every registered model (timm's registry-wide test): it builds from the smallest context of its
family, runs forward and backward on a batch of two, every trainable parameter gets a finite
gradient, and its parameter count is the one `divekit summary` reports.

The test is parametrized over the registry, so a newly registered model is tested as soon as its
family is imported in divekit/models/__init__.py; one whose tags match no family in FAMILIES fails
and asks for an input builder.

Every model currently gets a gradient for every trainable parameter (BERT's MLM head only because
its inputs include pred_positions), so there are no per-model exceptions. `summary` runs a model on
zeros of one shape, so its parameter count is checked for the models taking one float tensor
(images, features, detection, segmentation), not for the token models.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import pytest
import torch
import torch.nn as nn

from divekit.models import MODELS, create_model, list_models
from divekit.models.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")

BATCH = 2
VOCAB = 12  # the smallest sensible vocabulary: a few tokens plus <unk>, <pad>, <bos>, <eos>
STEPS = 5  # tokens per sequence


class Case(NamedTuple):
    """How to build and run one model: its context, a function from the built model to a batch of
    inputs and, for models that take one float tensor, the per-example shape `summary` is run on
    (None: summary, which feeds zeros of one shape, cannot run the model)."""

    context: dict[str, Any]
    inputs: Callable[[nn.Module], tuple]
    summary_shape: tuple[int, ...] | None


def _images(shape: tuple[int, ...]) -> Callable[[nn.Module], tuple]:
    return lambda model: (torch.randn(BATCH, *shape),)  # (B, *shape)


def _tokens(vocab: int = VOCAB, steps: int = STEPS) -> torch.Tensor:
    return torch.randint(0, vocab, (BATCH, steps))  # (B, T) token indices


def _default_in_shape(name: str) -> tuple[int, ...]:
    return tuple(inspect.signature(MODELS.get(name).factory).parameters["in_shape"].default)


def image_case(name: str) -> Case:
    """One-channel images at the model's default resize, else 28x28, as `divekit summary` builds them."""
    size = MODELS.get(name).defaults.get("resize") or 28
    shape = (1, size, size)
    return Case({"num_classes": 10, "in_shape": shape}, _images(shape), shape)


def tabular_case(name: str) -> Case:
    """Feature vectors of the model's default in_shape (e.g. 8 features for binary-mlp)."""
    shape = _default_in_shape(name)
    return Case({"in_shape": shape}, _images(shape), shape)


def detection_case(name: str) -> Case:
    """RGB images of 64x64, the smallest size TinySSD's five halvings allow; one object class."""
    shape = (3, 64, 64)
    return Case({"num_classes": 1}, _images(shape), shape)


def segmentation_case(name: str) -> Case:
    """RGB images of 64x64 (the FCN body downsamples by 32: a 2x2 feature map); VOC's 21 classes."""
    shape = (3, 64, 64)
    return Case({"num_classes": 21, "in_shape": shape}, _images(shape), shape)


def rnn_case(name: str) -> Case:
    """A batch of token sequences (B, T) for a language model over a small vocabulary."""
    return Case({"vocab_size": VOCAB}, lambda model: (_tokens(),), None)


def seq2seq_case(name: str) -> Case:
    """(X, dec_X, X_valid_len): source and decoder-input tokens (B, T) and the source lengths (B,)."""
    context = {"src_vocab_size": VOCAB, "tgt_vocab_size": VOCAB}
    return Case(context, lambda model: (_tokens(), _tokens(), torch.tensor([STEPS, STEPS - 2])), None)


def bert_case(name: str) -> Case:
    """(tokens, segments, valid_lens) of a text pair, and pred_positions for a model with an MLM head."""

    def inputs(model: nn.Module) -> tuple:
        steps = 8
        segments = torch.tensor([[0] * 4 + [1] * 4] * BATCH)  # (B, T): first and second sentence
        batch = (_tokens(steps=steps), segments, torch.tensor([steps, steps - 2]))
        if "pred_positions" in inspect.signature(model.forward).parameters:  # else the MLM head gets no gradient
            batch += (torch.tensor([[1, 2], [5, 6]]),)  # (B, P)
        return batch

    return Case({"vocab_size": VOCAB, "num_classes": 2}, inputs, None)


def gan_case(name: str) -> Case:
    """A GAN runs D(G(z)) on noise z (B, latent_dim): 2-D points for the toy GAN, 28x28 images for DCGAN."""
    in_shape = _default_in_shape(name)
    latent = inspect.signature(MODELS.get(name).factory).parameters["latent_dim"].default
    return Case({"in_shape": in_shape}, lambda model: (torch.randn(BATCH, latent),), (latent,))


# the family of a model is the first of these tags it has (mlp is tagged image and tabular: an image model)
FAMILIES: dict[str, Callable[[str], Case]] = {
    "gan": gan_case,
    "seq2seq": seq2seq_case,
    "bert": bert_case,
    "rnn": rnn_case,
    "detection": detection_case,
    "segmentation": segmentation_case,
    "image": image_case,
    "tabular": tabular_case,
    "regression": tabular_case,
}


def case_of(name: str) -> Case:
    """The input builder of the model's family, applied to it."""
    tags = MODELS.get(name).tags
    family = next((tag for tag in FAMILIES if tag in tags), None)
    if family is None:
        pytest.fail(f"model {name!r} has tags {tags}, none of which has an input builder: add its family to "
                    f"FAMILIES in tests/test_model_zoo.py")
    return FAMILIES[family](name)


def _float_tensors(out: Any) -> list[torch.Tensor]:
    """Every floating-point tensor in a model's (possibly nested) output, e.g. (logits, state)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _float_tensors(item)]
    return []


def test_every_family_of_the_registry_is_covered():
    # an import error in models/__init__.py would leave the parametrized test below with nothing to run
    assert len(list_models()) >= 40
    assert all(case_of(name) for name in list_models())


@pytest.mark.parametrize("name", list_models())
def test_model_builds_runs_forward_and_backward(name):
    torch.manual_seed(0)
    case = case_of(name)
    model = create_model(name, context=case.context)
    model.train()
    outputs = _float_tensors(model(*case.inputs(model)))
    assert outputs, f"{name}: no floating-point output"
    assert all(torch.isfinite(t).all() for t in outputs), f"{name}: non-finite output"
    # a random weighting of every output: a plain sum would give batch norm's inputs a zero gradient
    loss = sum((t * torch.randn_like(t)).sum() for t in outputs if t.requires_grad)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, f"{name}: no trainable parameters"
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradient for {bad}"

    if case.summary_shape is not None:  # summary feeds zeros of one shape: not the token models
        count = sum(p.numel() for p in model.parameters())
        report = summary(model, case.summary_shape)
        assert report.total_params == count
        # and its layer rows account for every parameter: each lives in a module the forward pass calls
        assert sum(row.params for row in report.rows) == count
