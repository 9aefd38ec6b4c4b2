"""The model zoo. Importing this package registers every model family."""

# importing a family registers its models
from . import alexnet, attention, densenet, fastnet, googlenet, lenet, linear, mlp, nin, resnet, rnn, seq2seq, transformer, vgg  # noqa: F401
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
