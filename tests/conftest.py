"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real dataset files laid out like the data cache ($DIVEKIT_TEST_DATA, else ../shared/data)."""
    path = Path(os.environ.get("DIVEKIT_TEST_DATA") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path}: set DIVEKIT_TEST_DATA to a copy of the d2l data cache")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one intra-op thread: their inputs are tiny, and on a shared, loaded
    machine a second thread only adds contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
