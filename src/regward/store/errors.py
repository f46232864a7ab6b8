"""Errors raised by the store."""

from __future__ import annotations

from regward.errors import RegwardError


class StoreError(RegwardError):
    """A database operation of the store failed, or its input was invalid.

    Messages name the operation and the database URL with its password masked.
    """
