"""The model zoo. Importing this package registers every model family."""

# importing a family registers its models
from . import (  # noqa: F401
    alexnet,
    attention,
    bert,
    densenet,
    fastnet,
    fcn,
    gan,
    googlenet,
    lenet,
    linear,
    logistic,
    mlp,
    nin,
    rcnn,
    resnet,
    rnn,
    seq2seq,
    ssd,
    transformer,
    vgg,
)
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
