"""The interface every version ordering family implements, and the key helpers they share."""

from __future__ import annotations

import abc
from typing import Any, Protocol

from regward.vulns.errors import InvalidVersionError


class VersionKey(Protocol):
    """A pre-parsed version: keys of one family compare with `<` and `==` like their versions."""

    def __lt__(self, other: Any, /) -> bool: ...


class Ordering(abc.ABC):
    """One version ordering family, such as dpkg or PEP 440.

    `key()` accepts what the ecosystem's own tool orders (apk and pip accept some strings that their
    documented grammar calls invalid) and raises `InvalidVersionError` for the rest. `is_canonical()`
    checks the documented grammar, so callers can reject malformed advisory data instead of ordering it.
    """

    family: str = ""
    """Short family name used in errors: `dpkg`, `apk`, `rpm`, `pep440`, `semver`, …"""

    def key(self, version: str) -> VersionKey:
        """Parse a version into a sort key.

        Raises:
            InvalidVersionError: the version is empty, contains whitespace or is outside the family's grammar.
        """
        if not version:
            raise InvalidVersionError(self.family, version, "empty version")
        if any(ch.isspace() for ch in version):
            raise InvalidVersionError(self.family, version, "contains whitespace")
        return self._key(version)

    def compare(self, a: str, b: str) -> int:
        """Return -1, 0 or 1 as version `a` sorts before, equal to or after version `b`.

        Raises:
            InvalidVersionError: either version cannot be parsed.
        """
        key_a = self.key(a)
        key_b = self.key(b)
        if key_a < key_b:
            return -1
        if key_b < key_a:
            return 1
        return 0

    def is_canonical(self, version: str) -> bool:
        """Return whether the version follows the family's documented grammar, not only its tool's leniency."""
        try:
            self.key(version)
        except InvalidVersionError:
            return False
        return True

    @abc.abstractmethod
    def _key(self, version: str) -> VersionKey:
        """Parse a non-empty version without whitespace into a sort key."""


class CmpKey(abc.ABC):
    """Base of sort keys whose order is defined by a pairwise comparison rather than a tuple."""

    __slots__ = ()

    @abc.abstractmethod
    def cmp(self, other: Any) -> int:
        """Return -1, 0 or 1 as this key sorts before, equal to or after `other` of the same class."""

    def __lt__(self, other: Any) -> bool:
        return self.cmp(other) < 0

    def __le__(self, other: Any) -> bool:
        return self.cmp(other) <= 0

    def __gt__(self, other: Any) -> bool:
        return self.cmp(other) > 0

    def __ge__(self, other: Any) -> bool:
        return self.cmp(other) >= 0

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.cmp(other) == 0

    def __hash__(self) -> int:
        # Equal keys may come from different spellings, so only the class is a safe hash.
        return hash(type(self))


def sign(value: int) -> int:
    """Return -1, 0 or 1 with the sign of `value`."""
    return (value > 0) - (value < 0)
