"""The model zoo. Importing this package registers every model family."""

from . import linear, mlp  # noqa: F401  (importing a family registers its models)
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
