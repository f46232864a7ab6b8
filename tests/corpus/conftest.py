"""Location of the large shared data sets for the corpus tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The data sets are checked out next to the repository; REGWARD_DATA_DIR overrides that location.
DATA_DIR = Path(
    os.environ.get("REGWARD_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data directory; the test is skipped when it is absent."""
    if not (DATA_DIR / "osv").is_dir():
        pytest.skip(f"corpus data not found at {DATA_DIR}")
    return DATA_DIR
