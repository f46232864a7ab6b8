"""Optional parts of the gate that live in other packages: the token service and admission.

They are built here so that the gate imports them only when they are configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regward.gate.app import Gate


def build_auth(gate: Gate) -> Any:
    """Build the token service from the config file's `auth` section."""
    raise NotImplementedError("auth is not wired yet")


def build_admission(gate: Gate) -> Any:
    """Build the admission and Gatekeeper endpoints, or return None when unavailable."""
    return None
