"""The root of regward's exception tree.

Every error regward raises on purpose derives from `RegwardError`, so the CLI and the gate catch it in
one place and print `diagnostics()` as the remedy.
"""

from __future__ import annotations


class RegwardError(Exception):
    """Base class of every error that regward raises on purpose."""

    def diagnostics(self) -> str:
        """Return a multi-line explanation with a remedy, for the CLI and logs."""
        return str(self)
