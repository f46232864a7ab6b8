"""Fixtures shared with the unit tests of `regward.auth`: the pinned clock and the local issuer."""

from __future__ import annotations

from tests.unit.auth.conftest import clock, oidc_issuer

__all__ = ["clock", "oidc_issuer"]
