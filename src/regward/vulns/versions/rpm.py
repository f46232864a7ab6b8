"""RPM version ordering (Red Hat, AlmaLinux, Rocky Linux, SUSE, openSUSE): `[epoch:]version[-release]`.

Written here from rpm's `rpmvercmp` (rpmio/rpmvercmp.c, rpm 4.15 and later, which added `^`),
because univers 32, the maintained Python choice installed here, fails 18 of the 123 Red Hat
vectors: it rejects versions whose colon is not an epoch separator (`a1:1`) and orders `1` equal
to `1-`.

Rules:

* Separators (anything but ASCII letters, digits, `~` and `^`) only split segments.
* `~` sorts before everything, even the end of the string. `^` sorts after the end but before any
  further segment.
* A numeric segment is newer than an alphabetic one, and numbers compare without leading zeros.
* An epoch is the leading digits before a `:`, and a missing epoch is 0.
* A release is what follows the last `-`. A version without a release sorts before the same
  version with any release, as rpm's Python `labelCompare` orders them.
"""

from __future__ import annotations

from regward.vulns.versions.interface import Ordering, VersionKey

_TILDE = (0,)
_END = (1,)
_CARET = (2,)
_ALPHA = 3
_NUMERIC = 4


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_alpha(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def segments_key(text: str) -> tuple[tuple[object, ...], ...]:
    """Return the `rpmvercmp` key of a version or release string: its segments, then an end marker."""
    out: list[tuple[object, ...]] = []
    pos = 0
    size = len(text)
    while True:
        while pos < size and not (
            _is_digit(text[pos]) or _is_alpha(text[pos]) or text[pos] in "~^"
        ):
            pos += 1
        if pos >= size:
            out.append(_END)
            return tuple(out)
        ch = text[pos]
        if ch == "~":
            out.append(_TILDE)
            pos += 1
        elif ch == "^":
            out.append(_CARET)
            pos += 1
        elif _is_digit(ch):
            end = pos
            while end < size and _is_digit(text[end]):
                end += 1
            digits = text[pos:end].lstrip("0")
            out.append((_NUMERIC, len(digits), digits))
            pos = end
        else:
            end = pos
            while end < size and _is_alpha(text[end]):
                end += 1
            out.append((_ALPHA, text[pos:end]))
            pos = end


def split_evr(version: str) -> tuple[int | None, str, str | None]:
    """Split `[epoch:]version[-release]` into its parts; a missing epoch or release is None."""
    digits_end = 0
    while digits_end < len(version) and _is_digit(version[digits_end]):
        digits_end += 1
    epoch: int | None = None
    rest = version
    if digits_end < len(version) and version[digits_end] == ":":
        # rpm reads an empty epoch (":1.0") as 0.
        epoch = int(version[:digits_end]) if digits_end else 0
        rest = version[digits_end + 1 :]
    dash = rest.rfind("-")
    if dash < 0:
        return epoch, rest, None
    return epoch, rest[:dash], rest[dash + 1 :]


class RpmOrdering(Ordering):
    """RPM ordering: epoch (missing is 0), then version, then release."""

    family = "rpm"

    def _key(self, version: str) -> VersionKey:
        epoch, upstream, release = split_evr(version)
        release_key: tuple[object, ...] = (0,) if release is None else (1, segments_key(release))
        return (epoch or 0, segments_key(upstream), release_key)

    def is_canonical(self, version: str) -> bool:
        """Return whether the version is ASCII and has a non-empty version part starting with a letter or digit."""
        if not version.isascii() or not super().is_canonical(version):
            return False
        _, upstream, release = split_evr(version)
        return bool(upstream) and upstream[0].isalnum() and release != ""
