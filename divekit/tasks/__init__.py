"""Training tasks: how a batch becomes a loss and metrics. Importing this package registers every task.

A dataset names its task (`DataBundle.task`, a string), unless the model names its own (a GAN's
`task = "gan"`, see `task_name`); the trainer builds it with `make_task`.
"""

# importing a module registers its tasks
from . import bert, binary, detection, gan, segmentation  # noqa: F401
from .base import (
    TASKS,
    Classification,
    LanguageModel,
    Regression,
    Seq2Seq,
    Task,
    make_task,
    perplexity,
    register_task,
    task_name,
)

__all__ = ["TASKS", "Classification", "LanguageModel", "Regression", "Seq2Seq", "Task", "make_task", "perplexity",
           "register_task", "task_name"]
