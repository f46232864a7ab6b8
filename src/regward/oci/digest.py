"""Content digests (`<algorithm>:<encoded>`): parsing, computing and verifying.

regward implements the two algorithms the OCI image spec registers with hashlib support:
sha256 (64 lowercase hex characters) and sha512 (128). Other algorithms, including the
registered `blake3`, raise an InvalidDigestError that names the algorithm.
"""

from __future__ import annotations

import hashlib
import re
from typing import NewType, Protocol

from regward.oci._text import shown
from regward.oci.errors import DigestMismatchError, InvalidDigestError

Digest = NewType("Digest", str)
"""A digest string that `parse_digest` accepted, such as `sha256:<64 hex>`."""

SUPPORTED_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
"""Digest algorithms regward computes, mapped to the length of their hex encoding."""

# The image spec grammar: algorithm components of [a-z0-9] joined by one of [+._-], then an
# encoded part of [a-zA-Z0-9=_-].
_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED_RE = re.compile(r"[a-zA-Z0-9=_-]+")
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")
_MAX_DIGEST_LENGTH = 256


def parse_digest(text: str) -> Digest:
    """Validate a digest string and return it as a `Digest`.

    Args:
        text: a string such as `sha256:6c3c…`.

    Raises:
        InvalidDigestError: the string does not follow the digest grammar, uses an algorithm
            other than sha256 or sha512, or its hex part has the wrong length or case.

    Returns:
        The same string, typed as `Digest`.
    """
    if not isinstance(text, str):
        raise InvalidDigestError(f"invalid digest {shown(text)}: expected a string")
    if len(text) > _MAX_DIGEST_LENGTH:
        raise InvalidDigestError(
            f"invalid digest {shown(text)}: {len(text)} characters, "
            f"the maximum is {_MAX_DIGEST_LENGTH}"
        )
    algorithm, separator, encoded = text.partition(":")
    if not separator:
        raise InvalidDigestError(f"invalid digest {shown(text)}: expected <algorithm>:<hex>")
    if not _ALGORITHM_RE.fullmatch(algorithm) or not _ENCODED_RE.fullmatch(encoded):
        raise InvalidDigestError(f"invalid digest {shown(text)}: expected <algorithm>:<hex>")
    expected_length = SUPPORTED_ALGORITHMS.get(algorithm)
    if expected_length is None:
        raise InvalidDigestError(
            f"unsupported digest algorithm {algorithm!r} in {shown(text)}: "
            "regward supports sha256 and sha512"
        )
    if len(encoded) != expected_length or not _LOWER_HEX_RE.fullmatch(encoded):
        raise InvalidDigestError(
            f"invalid {algorithm} digest {shown(text)}: "
            f"expected {expected_length} lowercase hex characters"
        )
    return Digest(text)


def is_digest(text: str) -> bool:
    """Return True if `parse_digest` accepts `text`."""
    try:
        parse_digest(text)
    except InvalidDigestError:
        return False
    return True


def split_digest(digest: str) -> tuple[str, str]:
    """Return the (algorithm, hex) parts of a digest, validating it first.

    Raises:
        InvalidDigestError: `digest` is not a valid supported digest.
    """
    algorithm, _, encoded = parse_digest(digest).partition(":")
    return algorithm, encoded


def referrers_tag(digest: str) -> str:
    """Return the OCI referrers tag schema tag for `digest`, such as `sha256-<hex>`.

    The distribution spec (v1.1, "Referrers Tag Schema") truncates the algorithm to 32 and the
    encoded part to 64 characters, so a sha512 digest keeps the first 64 hex characters.

    Raises:
        InvalidDigestError: `digest` is not a valid supported digest.
    """
    algorithm, encoded = split_digest(digest)
    return f"{algorithm[:32]}-{encoded[:64]}"


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def _new_hash(algorithm: str) -> _Hasher:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise InvalidDigestError(
            f"unsupported digest algorithm {shown(algorithm)}: regward supports sha256 and sha512"
        )
    return hashlib.new(algorithm)


def compute_digest(data: bytes, algorithm: str = "sha256") -> Digest:
    """Hash `data` and return its digest.

    Raises:
        InvalidDigestError: `algorithm` is neither sha256 nor sha512.
    """
    hasher = _new_hash(algorithm)
    hasher.update(data)
    return Digest(f"{algorithm}:{hasher.hexdigest()}")


def verify_digest(data: bytes, expected: str, *, subject: str = "content") -> None:
    """Check that `data` hashes to `expected`, using the algorithm `expected` names.

    Args:
        data: the bytes to check.
        expected: the digest the bytes must have.
        subject: what the bytes are, for the error message (such as "manifest app:v1").

    Raises:
        InvalidDigestError: `expected` is not a valid supported digest.
        DigestMismatchError: the bytes hash to a different digest.
    """
    verifier = DigestVerifier(expected, subject=subject)
    verifier.update(data)
    verifier.verify()


class DigestVerifier:
    """Incremental digest check for content that arrives in chunks.

    Call `update` for each chunk, then `verify` once the content is complete.
    """

    def __init__(self, expected: str, *, subject: str = "content") -> None:
        """Start checking content against `expected`.

        Raises:
            InvalidDigestError: `expected` is not a valid supported digest.
        """
        self.expected: Digest = parse_digest(expected)
        """The digest the content must have."""
        self.subject = subject
        """What the content is, for error messages."""
        self._algorithm = self.expected.partition(":")[0]
        self._hasher = _new_hash(self._algorithm)
        self._size = 0

    @property
    def size(self) -> int:
        """Number of bytes passed to `update` so far."""
        return self._size

    @property
    def digest(self) -> Digest:
        """Digest of the bytes passed to `update` so far."""
        return Digest(f"{self._algorithm}:{self._hasher.hexdigest()}")

    def update(self, chunk: bytes) -> None:
        """Add the next chunk of content."""
        self._hasher.update(chunk)
        self._size += len(chunk)

    def verify(self) -> Digest:
        """Check the content seen so far against the expected digest.

        Raises:
            DigestMismatchError: the content hashes to a different digest.

        Returns:
            The verified digest.
        """
        actual = self.digest
        if actual != self.expected:
            raise DigestMismatchError(
                f"digest mismatch for {self.subject}: got {actual}, expected {self.expected}",
                expected=self.expected,
                actual=actual,
            )
        return actual
