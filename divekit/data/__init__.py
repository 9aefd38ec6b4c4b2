"""Datasets: the download hub, in-memory loaders, batched transforms and the dataset registry."""

from .datasets import DATASETS, DataBundle, list_datasets, load_dataset, register_dataset
from .loader import TensorLoader

__all__ = ["DATASETS", "DataBundle", "TensorLoader", "list_datasets", "load_dataset", "register_dataset"]
