"""Errors raised by `regward.signatures`.

`SignatureError` is the base of this package's errors. A signature that fails a check raises
`SignatureVerificationError`, which names the check and, where it has them, the actual and expected
values. Unusable key material raises `InvalidKeyError`.
"""

from __future__ import annotations

from regward.errors import RegwardError


class SignatureError(RegwardError):
    """Base class of every error raised by `regward.signatures`."""


class InvalidKeyError(SignatureError):
    """Key material that cannot be used: not PEM, not a public key, or an unsupported algorithm."""


class InvalidAuthorityError(SignatureError):
    """A `KeyAuthority` whose settings contradict each other or name an unknown mode."""


class SignatureVerificationError(SignatureError):
    """A signature failed one of the verification checks.

    The message names the failed check. `got` and `expected` are the values that did not match,
    when the check compares two values.
    """

    def __init__(
        self,
        check: str,
        message: str,
        *,
        got: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.check = check
        """Short name of the failed check, e.g. `payload-digest` or `signature`."""
        self.got = got
        """The value found, when the check compares two values."""
        self.expected = expected
        """The value the check required, when the check compares two values."""
        text = message
        if got is not None or expected is not None:
            text = f"{message}: got {got}, expected {expected}"
        super().__init__(text)
