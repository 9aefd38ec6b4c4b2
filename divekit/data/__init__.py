"""Datasets: the download hub, in-memory loaders, batched transforms and the dataset registry."""

from .loader import TensorLoader
from .registry import DATASETS, DataBundle, list_datasets, load_dataset, register_dataset

__all__ = ["DATASETS", "DataBundle", "TensorLoader", "list_datasets", "load_dataset", "register_dataset"]
