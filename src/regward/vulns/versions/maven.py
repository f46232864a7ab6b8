"""Maven version ordering, after the "Version Order Specification" of the Maven POM reference.

Written by hand from https://maven.apache.org/pom.html#version-order-specification, because
univers 32 misorders Maven versions (it sorts `2.0.0.RELEASE` after `2.0.0` and `1-ga-1` before
`1-1`, which the specification makes equal). Rules:

* The version is lower-cased and split into tokens at `.` and `-`, and where digits and other
  characters meet (such a transition counts as `-`). Each token keeps its separator as a prefix;
  an empty token is `0`. Numbers lose their leading zeros.
* `cr` is `rc`, and `ga`, `final` and `release` are the empty qualifier. `a`, `b` and `m`
  directly followed by a digit are `alpha`, `beta` and `milestone`.
* Trailing null tokens (`0` and the empty qualifier) are dropped, from the end and again before
  each remaining `-`, so `1.0.0` is `1` and `1.0.0-foo.0.0` is `1-foo`.
* Tokens compare pairwise. With the same prefix, numbers compare as numbers, a number is newer than
  a qualifier, and qualifiers order `alpha < beta < milestone < rc < snapshot < (empty) < sp`, then
  unknown qualifiers alphabetically. With different prefixes, `.qualifier < -qualifier < -number <
  .number`. A missing token compares as 0 against a number and as the empty qualifier against a
  qualifier, as Maven's `ComparableVersion` pads them (so `1.sp` is newer than `1`).
"""

from __future__ import annotations

from typing import Any

from regward.vulns.versions.interface import CmpKey, Ordering, VersionKey, sign

_KEYWORDS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"cr": "rc", "ga": "", "final": "", "release": ""}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE = (_KEYWORDS.index(""), "")

Token = tuple[str, int | str]
"""A prefix (`""` for the first token, `.` or `-`) and a number or a qualifier."""


def _qualifier_rank(qualifier: str) -> tuple[int, str]:
    if qualifier in _KEYWORDS:
        return (_KEYWORDS.index(qualifier), "")
    return (len(_KEYWORDS), qualifier)


def _kind_rank(token: Token) -> int:
    prefix, value = token
    numeric = isinstance(value, int)
    if prefix == ".":
        return 3 if numeric else 0
    return 2 if numeric else 1


def _compare_values(left: int | str, right: int | str) -> int:
    if isinstance(left, int) and isinstance(right, int):
        return sign(left - right)
    if isinstance(left, int):
        return 1
    if isinstance(right, int):
        return -1
    left_rank = _qualifier_rank(left)
    right_rank = _qualifier_rank(right)
    return (left_rank > right_rank) - (left_rank < right_rank)


def _compare_with_padding(value: int | str) -> int:
    if isinstance(value, int):
        return sign(value)
    rank = _qualifier_rank(value)
    return (rank > _RELEASE) - (rank < _RELEASE)


def _is_null(value: int | str) -> bool:
    return value == 0 or value == ""


def _split(version: str) -> list[Token]:
    tokens: list[Token] = []
    text = version.lower()
    prefix = ""
    start = 0
    for index, ch in enumerate(text):
        if ch in ".-":
            tokens.append((prefix, _token_value(text[start:index], followed_by_digit=False)))
            prefix = ch
            start = index + 1
        elif index > start and _is_digit(ch) != _is_digit(text[index - 1]):
            tokens.append(
                (prefix, _token_value(text[start:index], followed_by_digit=_is_digit(ch)))
            )
            prefix = "-"
            start = index
    tokens.append((prefix, _token_value(text[start:], followed_by_digit=False)))
    return tokens


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _token_value(piece: str, followed_by_digit: bool) -> int | str:
    if not piece:
        return 0
    if _is_digit(piece[0]):
        return int(piece)
    if followed_by_digit and piece in _SHORT:
        return _SHORT[piece]
    return _ALIASES.get(piece, piece)


def _trim(tokens: list[Token]) -> list[Token]:
    index = len(tokens) - 1
    while index > 0:
        if _is_null(tokens[index][1]):
            del tokens[index]
            index -= 1
            continue
        while index >= 0 and tokens[index][0] != "-":
            index -= 1
        index -= 1
    return tokens


def parse(version: str) -> list[Token]:
    """Split a Maven version into prefixed tokens with trailing nulls removed."""
    return _trim(_split(version))


class MavenKey(CmpKey):
    """A parsed Maven version."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    def cmp(self, other: Any) -> int:
        """Compare with another Maven version token by token."""
        assert isinstance(other, MavenKey)
        left = self.tokens
        right = other.tokens
        for index in range(max(len(left), len(right))):
            if index >= len(left):
                result = -_compare_with_padding(right[index][1])
            elif index >= len(right):
                result = _compare_with_padding(left[index][1])
            elif left[index][0] == right[index][0]:
                result = _compare_values(left[index][1], right[index][1])
            else:
                result = sign(_kind_rank(left[index]) - _kind_rank(right[index]))
            if result:
                return result
        return 0


class MavenOrdering(Ordering):
    """Maven ordering; every string is a Maven version."""

    family = "maven"

    def _key(self, version: str) -> VersionKey:
        return MavenKey(parse(version))
