"""PyPI version ordering: PEP 440 through `packaging`, and pip's legacy order for other strings.

pip before 22 (through `packaging.version.LegacyVersion`) ordered any string; old PyPI releases and
advisories use such versions (`0.4m5`, `2.0.0-final`, `2013-02-01T20:50:46+0100`). `packaging` 22
removed that class, so its rule is written out here: a legacy version sorts before every PEP 440
version and is compared part by part.
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

from regward.vulns.versions.interface import Ordering, VersionKey

_LEGACY_PART = re.compile(r"(\d+|[a-z]+|\.|-)")
# Spellings that pip's legacy order treats as the same pre-release or development marker.
_LEGACY_ALIASES = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}
_FINAL = "*final"
_FINAL_DASH = "*final-"
_ZERO = "00000000"


def _legacy_parts(version: str) -> tuple[str, ...]:
    """Return the parts of a legacy version: numbers zero-padded to 8 digits, words prefixed with `*`."""
    parts: list[str] = []
    raw = [_LEGACY_ALIASES.get(piece, piece) for piece in _LEGACY_PART.split(version.lower())]
    raw.append(_FINAL)
    for piece in raw:
        if not piece or piece == ".":
            continue
        if piece[0].isdigit():
            part = piece.zfill(8)
        elif piece == _FINAL:
            part = piece
        else:
            part = "*" + piece
        if part.startswith("*"):
            # A pre-release word drops a preceding "-" marker; any word drops trailing zero numbers,
            # so "1.0-a" equals "1-a" and "1.0" equals "1".
            if part < _FINAL:
                while parts and parts[-1] == _FINAL_DASH:
                    parts.pop()
            while parts and parts[-1] == _ZERO:
                parts.pop()
        parts.append(part)
    return tuple(parts)


class Pep440Ordering(Ordering):
    """PEP 440 ordering with pip's legacy fallback; only PEP 440 versions are canonical."""

    family = "pep440"

    def _key(self, version: str) -> VersionKey:
        try:
            return (1, Version(version))
        except InvalidVersion:
            return (0, _legacy_parts(version))

    def is_canonical(self, version: str) -> bool:
        """Return whether the version is valid under PEP 440."""
        try:
            Version(version)
        except InvalidVersion:
            return False
        return True
