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
