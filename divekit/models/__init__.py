"""The model zoo. Importing this package registers every model family."""

from . import linear  # noqa: F401  (registers the chapter-3 models)
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
