"""Errors of `regward.scanning`."""

from __future__ import annotations

from regward.errors import RegwardError


class ScanningError(RegwardError):
    """Base class of the errors raised by `regward.scanning`."""


class TargetError(ScanningError):
    """A scan target is malformed, missing or unreadable."""
