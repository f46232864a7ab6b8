"""Errors raised by `regward.oci`: malformed input, failed verification and registry failures.

`RegistryError` and its subclasses separate "the registry says this does not exist"
(`NotFoundError`) from "the registry could not be asked" (`RegistryUnavailableError`), because
policy rules treat missing evidence and failed fetches differently.
"""

from __future__ import annotations

from regward.errors import RegwardError


class OCIError(RegwardError):
    """Base class of every error raised by `regward.oci`."""


class InvalidReferenceError(OCIError):
    """An image reference, repository name or tag does not follow the reference grammar."""


class InvalidDigestError(OCIError):
    """A digest string is malformed or uses an algorithm regward does not implement."""


class DigestMismatchError(OCIError):
    """Content does not hash to the digest it was requested or announced by."""

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None):
        super().__init__(message)
        self.expected = expected
        """The digest the content was expected to have."""
        self.actual = actual
        """The digest computed from the content, or announced by a header that disagrees."""


class ManifestError(OCIError):
    """A manifest or index is not valid JSON of a supported, well-formed schema."""


class TooLargeError(OCIError):
    """A body or listing is larger than the configured limit."""

    def __init__(self, message: str, *, limit: int | None = None, size: int | None = None):
        super().__init__(message)
        self.limit = limit
        """The configured maximum (bytes, or entries for listings)."""
        self.size = size
        """The size seen or announced when the limit was exceeded, if known."""


class RegistryError(OCIError):
    """A registry returned an error, or the exchange with it failed."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status_code: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.url = url
        """The URL of the request that failed."""
        self.status_code = status_code
        """The HTTP status, or None when no response arrived."""
        self.code = code
        """The first distribution error code in the body, such as `MANIFEST_UNKNOWN`."""


class NotFoundError(RegistryError):
    """The registry returned 404: the repository, manifest or blob does not exist there."""


class AuthenticationError(RegistryError):
    """The registry or its token service rejected the request (401 or 403)."""

    def diagnostics(self) -> str:
        """Return the message with a remedy."""
        return (
            f"{self}\n"
            "Check the registry credentials regward uses and that they grant the requested access."
        )


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or returned no usable response (5xx, 429, timeout).

    This means "could not fetch", which is distinct from "not found": the content may exist.
    """

    def diagnostics(self) -> str:
        """Return the message with a remedy."""
        return f"{self}\nThe registry may be down or overloaded; retry later."
