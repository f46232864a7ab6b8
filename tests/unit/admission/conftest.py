"""Fixtures of the admission unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.admission.reviews import keep_package_logger

__all__ = ["restore_logging"]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the handler that `regward.cli.main.main` installs, so later tests see the logs."""
    with keep_package_logger():
        yield
