"""Packagist (Composer) version ordering: Composer's normalisation, then PHP's `version_compare`.

Written by hand from Composer's documentation on versions and stabilities and PHP's
`version_compare` manual, because univers 32 misorders Packagist versions (it sorts `1.0.0-RC1`
below `1.0.0-beta2` and `1.0.0-patch1` below `1.0.0`, and makes `1.0.0.1` equal `1.0.0`). A version is
normalised as Composer's `VersionParser::normalize` does: a leading `v` and `+build` are dropped,
the numeric part is padded to four numbers, and a stability suffix is spelled `alpha`, `beta`, `RC`
or `patch` with its number. PHP then splits at `.`, `-`, `_`, `+` and where digits and letters meet,
and orders special words `dev < alpha = a < beta = b < RC = rc < (number) < pl = p`; an unknown word
sorts before `dev`. When one version has more parts, a further number makes it newer, and a further
word compares with a number.
"""

from __future__ import annotations

import re
from typing import Any

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import CmpKey, Ordering, VersionKey

_MODIFIER = r"[._-]?(?:(?P<stability>stable|beta|b|RC|rc|alpha|a|patch|pl|p)(?P<number>(?:[.-]?\d+)*)?)?(?P<dev>[.-]?dev)?"
_CLASSICAL = re.compile(r"v?(?P<numbers>\d+(?:\.\d+){0,3})" + _MODIFIER, re.IGNORECASE)
_DATE = re.compile(
    r"v?(?P<numbers>\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3}){0,2})" + _MODIFIER, re.IGNORECASE
)
_STABILITY = {
    "a": "alpha",
    "alpha": "alpha",
    "b": "beta",
    "beta": "beta",
    "rc": "RC",
    "p": "patch",
    "pl": "patch",
    "patch": "patch",
}
# PHP's special forms, matched as prefixes in this order; a number ranks 4.
_SPECIAL_FORMS = (
    ("dev", 0),
    ("alpha", 1),
    ("a", 1),
    ("beta", 2),
    ("b", 2),
    ("RC", 3),
    ("rc", 3),
    ("#", 4),
    ("pl", 5),
    ("p", 5),
)
_NUMBER_RANK = 4
_UNKNOWN_RANK = -1
_PART = re.compile(r"\d+|[^\d.]+")


def normalize(version: str) -> str:
    """Normalise a Composer version, or raise InvalidVersionError."""
    text = version.split("+", 1)[0]
    for pattern, is_date in ((_CLASSICAL, False), (_DATE, True)):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        numbers = re.split(r"[.:-]", match["numbers"]) if is_date else match["numbers"].split(".")
        if not is_date:
            numbers += ["0"] * (4 - len(numbers))
        result = ".".join(numbers)
        stability = (match["stability"] or "").lower()
        if stability and stability != "stable":
            suffix = (match["number"] or "").lstrip(".-")
            result += "-" + _STABILITY[stability] + suffix
        if match["dev"]:
            result += "-dev"
        return result
    raise InvalidVersionError(
        "packagist", version, "not a Composer version (branches such as dev-main have no order)"
    )


def _special_rank(word: str) -> int:
    for name, rank in _SPECIAL_FORMS:
        if word.startswith(name):
            return rank
    return _UNKNOWN_RANK


def php_parts(version: str) -> tuple[int | str, ...]:
    """Split a version as PHP's `version_compare` canonicalises it."""
    canonical = re.sub(r"[-_+]", ".", version)
    return tuple(int(part) if part.isdigit() else part for part in _PART.findall(canonical))


def _compare_part(left: int | str, right: int | str) -> int:
    if isinstance(left, int) and isinstance(right, int):
        return (left > right) - (left < right)
    left_rank = _NUMBER_RANK if isinstance(left, int) else _special_rank(left)
    right_rank = _NUMBER_RANK if isinstance(right, int) else _special_rank(right)
    return (left_rank > right_rank) - (left_rank < right_rank)


class ComposerKey(CmpKey):
    """A normalised Composer version."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[int | str, ...]) -> None:
        self.parts = parts

    def cmp(self, other: Any) -> int:
        """Compare with another Composer version as PHP's `version_compare` does."""
        assert isinstance(other, ComposerKey)
        left = self.parts
        right = other.parts
        for index in range(min(len(left), len(right))):
            result = _compare_part(left[index], right[index])
            if result:
                return result
        if len(left) > len(right):
            extra = left[len(right)]
            return 1 if isinstance(extra, int) else _compare_part(extra, 0)
        if len(right) > len(left):
            extra = right[len(left)]
            return -1 if isinstance(extra, int) else -_compare_part(extra, 0)
        return 0


class PackagistOrdering(Ordering):
    """Composer ordering."""

    family = "packagist"

    def _key(self, version: str) -> VersionKey:
        return ComposerKey(php_parts(normalize(version)))
