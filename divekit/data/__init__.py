"""Datasets: the download hub, in-memory loaders, batched transforms and the dataset registry.

Importing this package registers every dataset: each module below registers those it defines.
"""

# importing a module registers its datasets (csv_data and folder their `csv:` and `folder:` sources)
from . import (  # noqa: F401
    bert,
    binary,
    cifar,
    csv_data,
    detection,
    folder,
    ptb,
    segmentation,
    synthetic,
    tabular,
    text,
    translation,
    vision,
)
from .loader import TensorLoader
from .registry import DATASETS, DataBundle, dataset_entry, list_datasets, load_dataset, register_dataset

__all__ = ["DATASETS", "DataBundle", "TensorLoader", "dataset_entry", "list_datasets", "load_dataset",
           "register_dataset"]
