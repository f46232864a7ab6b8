"""apk version ordering (Alpine, Wolfi, Chainguard).

The grammar documented in apk-package(5) is `number{.number}…{letter}{_suffix{number}}…{~hash}{-r#}`
with the suffixes `alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p`.

The ordering is written here from apk-tools' tokenizer (src/version.c), because no maintained Python
package orders apk versions correctly (univers 32 rejects `1.2_cvs1` and `6.6.2p1`). Two generations
of that tokenizer matter:

* apk-tools 3 is the primary order. When it meets a token that its grammar rejects, it stops and
  treats two versions that break at the same token as equal.
* apk-tools 2, which earlier Alpine releases ship, accepted more: digits after the letter
  (`6.6.2p1`, used by real packages such as opensmtpd) and a letter after a dot (`0.8.21.r2`). When
  apk-tools 3 ties two such versions, the apk-tools 2 order breaks the tie.
"""

from __future__ import annotations

import re

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey

# apk-tools 3 token types, in the order in which they may follow one another.
_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _HASH, _REVISION, _END, _INVALID = range(9)

# Suffix weights; a suffix below _NO_SUFFIX marks a pre-release.
_SUFFIXES = {
    "alpha": 0,
    "beta": 1,
    "pre": 2,
    "rc": 3,
    "cvs": 5,
    "svn": 6,
    "git": 7,
    "hg": 8,
    "p": 9,
}
_NO_SUFFIX = 4
# A pre-release suffix sorts below even the end of the version.
_PRE_RELEASE_RANK = -100

_CANONICAL = re.compile(
    r"\d+(?:\.\d+)*[a-z]?(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*(?:~[0-9a-f]+)?(?:-r\d+)?"
)
# Digits after the letter, as apk-tools 2 accepted and Alpine packages used (opensmtpd 6.6.2p1-r0).
_LEGACY_LETTER_DIGITS = re.compile(
    r"\d+(?:\.\d+)*[a-z]\d+(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*(?:-r\d+)?"
)


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_lower(ch: str) -> bool:
    return "a" <= ch <= "z"


def _digits_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and _is_digit(text[end]):
        end += 1
    return end


def _v3_key(version: str) -> tuple[tuple[object, ...], ...]:
    """Return the apk-tools 3 key: one `(rank, value)` item per token, ending with END or INVALID.

    Where two versions have tokens of different types, apk-tools 3 puts the version whose token type
    comes later in the grammar first, except that a pre-release suffix sorts first of all. The rank
    `-type` (or `_PRE_RELEASE_RANK`) encodes exactly that, so keys compare as tuples.
    """
    items: list[tuple[object, ...]] = []
    end = _digits_end(version, 0)
    if end == 0:
        return ((-_INVALID,),)
    items.append((-_INITIAL, int(version[:end])))
    pos = end
    token = _INITIAL
    while pos < len(version):
        ch = version[pos]
        if _is_lower(ch):
            if token > _DIGIT:
                break
            items.append((-_LETTER, ord(ch)))
            token = _LETTER
            pos += 1
        elif ch == "." or _is_digit(ch):
            if ch == ".":
                if token > _DIGIT:
                    break
                pos += 1
            if token in (_INITIAL, _DIGIT):
                next_token = _DIGIT
            elif token == _SUFFIX:
                next_token = _SUFFIX_NO
            else:
                break
            end = _digits_end(version, pos)
            if end == pos:
                break
            digits = version[pos:end]
            pos = end
            token = next_token
            if token == _SUFFIX_NO:
                items.append((-_SUFFIX_NO, int(digits)))
            elif digits[0] == "0":
                # apk compares number components with a leading zero as strings; every such
                # string sorts below every number without one, because "0" < "1".."9".
                items.append((-_DIGIT, (0, digits)))
            else:
                items.append((-_DIGIT, (1, int(digits))))
        elif ch == "_":
            if token > _SUFFIX_NO:
                break
            pos += 1
            end = pos
            while end < len(version) and _is_lower(version[end]):
                end += 1
            weight = _SUFFIXES.get(version[pos:end])
            if weight is None:
                break
            pos = end
            token = _SUFFIX
            rank = _PRE_RELEASE_RANK if weight < _NO_SUFFIX else -_SUFFIX
            items.append((rank, weight))
        elif ch == "~":
            if token >= _HASH:
                break
            pos += 1
            end = pos
            while end < len(version) and (_is_digit(version[end]) or "a" <= version[end] <= "f"):
                end += 1
            if end == pos:
                break
            items.append((-_HASH, version[pos:end]))
            pos = end
            token = _HASH
        elif ch == "-":
            if token >= _REVISION or not version.startswith("-r", pos):
                break
            pos += 2
            end = _digits_end(version, pos)
            if end == pos:
                break
            items.append((-_REVISION, int(version[pos:end])))
            pos = end
            token = _REVISION
        else:
            break
    else:
        items.append((-_END,))
        return tuple(items)
    items.append((-_INVALID,))
    return tuple(items)


# apk-tools 2 token types; its INVALID is -1, below every other type.
_V2_DIGIT_OR_ZERO, _V2_DIGIT, _V2_LETTER, _V2_SUFFIX, _V2_SUFFIX_NO, _V2_REVISION, _V2_END = range(
    7
)
_V2_INVALID = -1
_V2_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
_V2_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")
# apk-tools 2 stores numbers in 64 bits and rejects components of 18 digits or more.
_V2_MAX_DIGITS = 18


def _v2_tokens(version: str) -> list[tuple[int, int]]:
    """Return apk-tools 2's `(value, type of the next token)` pairs for a version."""
    out: list[tuple[int, int]] = []
    token = _V2_DIGIT
    pos = 0
    size = len(version)
    while True:
        if pos >= size:
            out.append((0, _V2_END))
            return out
        value = 0
        forced_next = _V2_INVALID
        end = pos
        if token == _V2_DIGIT_OR_ZERO and version[pos] == "0":
            # A run of zeros after a dot counts as minus the number of extra zeros.
            zeros = 0
            while pos + zeros + 1 < size and version[pos + zeros + 1] == "0":
                zeros += 1
            value = -zeros
            forced_next = _V2_DIGIT
            end = pos + zeros
        elif token in (_V2_DIGIT_OR_ZERO, _V2_DIGIT, _V2_SUFFIX_NO, _V2_REVISION):
            end = _digits_end(version, pos)
            if end - pos >= _V2_MAX_DIGITS:
                out.append((-1, _V2_INVALID))
                return out
            value = int(version[pos:end]) if end > pos else 0
        elif token == _V2_LETTER:
            value = ord(version[pos])
            end = pos + 1
        elif token == _V2_SUFFIX:
            rest = version[pos:]
            pre = next((s for s in _V2_PRE_SUFFIXES if rest.startswith(s)), None)
            post = next((s for s in _V2_POST_SUFFIXES if rest.startswith(s)), None)
            if pre is not None:
                value = _V2_PRE_SUFFIXES.index(pre) - len(_V2_PRE_SUFFIXES)
                end = pos + len(pre)
            elif post is not None:
                value = _V2_POST_SUFFIXES.index(post)
                end = pos + len(post)
            else:
                out.append((-1, _V2_INVALID))
                return out
        else:
            out.append((-1, _V2_INVALID))
            return out
        pos = end
        if pos >= size:
            token = _V2_END
        elif forced_next != _V2_INVALID:
            token = forced_next
        else:
            token, pos = _v2_next_type(version, pos, token)
        out.append((value, token))
        if token in (_V2_END, _V2_INVALID):
            return out


def _v2_next_type(version: str, pos: int, token: int) -> tuple[int, int]:
    """Return the type of the token at `pos` and the position after its separator."""
    ch = version[pos]
    if token in (_V2_DIGIT, _V2_DIGIT_OR_ZERO) and _is_lower(ch):
        next_token = _V2_LETTER
    elif token == _V2_LETTER and _is_digit(ch):
        next_token = _V2_DIGIT
    elif token == _V2_SUFFIX and _is_digit(ch):
        next_token = _V2_SUFFIX_NO
    else:
        next_token = _V2_INVALID
        if ch == ".":
            next_token = _V2_DIGIT_OR_ZERO
        elif ch == "_":
            next_token = _V2_SUFFIX
        elif ch == "-" and version.startswith("-r", pos):
            next_token = _V2_REVISION
            pos += 1
        pos += 1
    allowed_backstep = (
        (next_token == _V2_DIGIT_OR_ZERO and token == _V2_DIGIT)
        or (next_token == _V2_SUFFIX and token == _V2_SUFFIX_NO)
        or (next_token == _V2_DIGIT and token == _V2_LETTER)
    )
    if next_token < token and not allowed_backstep:
        next_token = _V2_INVALID
    return next_token, pos


def _v2_key(version: str) -> tuple[int, ...] | None:
    """Return the apk-tools 2 key, or None when apk-tools 2 also rejects the version.

    apk-tools 2 compares the value of each token, then the type of the next one. Where the types
    differ, the later type sorts first. Exceptions: a pre-release suffix sorts first of all, and an
    invalid token (type -1) sorts last.
    """
    tokens = _v2_tokens(version)
    if tokens[-1][1] != _V2_END:
        return None
    key: list[int] = []
    for index, (value, next_type) in enumerate(tokens):
        key.append(value)
        if next_type == _V2_SUFFIX and tokens[index + 1][0] < 0:
            key.append(_PRE_RELEASE_RANK)
        else:
            key.append(-next_type)
    return tuple(key)


class ApkOrdering(Ordering):
    """apk ordering as apk-tools 3 defines it, with apk-tools 2 breaking ties between legacy forms."""

    family = "apk"

    def _key(self, version: str) -> VersionKey:
        if not version.isascii():
            raise InvalidVersionError(self.family, version, "contains non-ASCII characters")
        primary = _v3_key(version)
        if primary[-1] != (-_INVALID,):
            return (primary, ())
        legacy = _v2_key(version)
        return (primary, (0,) if legacy is None else (1, legacy))

    def is_canonical(self, version: str) -> bool:
        """Return whether the version follows apk-package(5), or is a letter-and-digits legacy form.

        `20.10.11.r0` and `1.18.-r2` (malformed secdb entries) are not canonical.
        """
        return bool(_CANONICAL.fullmatch(version) or _LEGACY_LETTER_DIGITS.fullmatch(version))
