"""Errors raised by `regward.auth`.

`AuthError` is the base of this package's errors. Invalid settings raise `AuthConfigError`.
Credentials that fail a check raise `AuthenticationError` or a subclass. Its message is safe to log
and to return to the client, because it never contains the credential itself.
"""

from __future__ import annotations

from regward.errors import RegwardError


class AuthError(RegwardError):
    """Base class of every error raised by `regward.auth`."""


class AuthConfigError(AuthError):
    """The `auth` section of the config file is invalid; the message names the key path."""


class AuthenticationError(AuthError):
    """Credentials were presented but failed a check: unknown, expired, revoked or malformed."""


class OidcVerificationError(AuthenticationError):
    """A CI OIDC ID token failed a verification check: signature, issuer, audience or time."""


class JwksFetchError(OidcVerificationError):
    """The JSON Web Key Set of an OIDC issuer could not be read, fetched or parsed.

    `url` is the JWKS URL or file path, `status_code` the HTTP status when the server sent one.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class SigningKeyError(AuthError):
    """The signing key directory cannot be read or written, or contains an unusable key."""


class TokenStoreError(AuthError):
    """A static token operation failed: unknown id, already revoked, or an invalid expiry."""
