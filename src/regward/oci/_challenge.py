"""Parsing of `WWW-Authenticate` challenges (RFC 7235, section 4.1).

One header value may carry several challenges separated by commas, and quoted parameter values
may themselves contain commas, so the value is scanned character by character:

    Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull,push"
    Basic realm="registry", Bearer realm="https://auth.example/token"
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from regward.oci._text import shown
from regward.oci.errors import AuthenticationError

# RFC 7230 section 3.2.6: token characters.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
# RFC 7235 section 2.1: token68 characters, optionally followed by "=" padding.
_TOKEN68_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/")
_SPACE = " \t"


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: a scheme and its parameters."""

    scheme: str
    """Scheme in lower case, such as `bearer` or `basic`."""
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Parameters with lower-case names, such as `realm`, `service` and `scope`."""
    token68: str | None = None
    """The token68 form some schemes use instead of parameters."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek() and self.peek() in _SPACE:
            self.pos += 1

    def skip_separators(self) -> None:
        while self.peek() and self.peek() in _SPACE + ",":
            self.pos += 1

    def read_token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def read_quoted(self) -> str:
        self.pos += 1  # the opening quote
        chars: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(chars)
            else:
                chars.append(char)
                self.pos += 1
        raise self.error("unterminated quoted string")

    def read_token68(self) -> str | None:
        """Read a token68 if the challenge ends after it (at the end of text or a comma)."""
        start = self.pos
        while self.peek() and self.peek() in _TOKEN68_CHARS:
            self.pos += 1
        if self.pos == start:
            return None
        while self.peek() == "=":
            self.pos += 1
        end = self.pos
        self.skip_space()
        if self.at_end() or self.peek() == ",":
            return self.text[start:end]
        self.pos = start
        return None

    def starts_param(self) -> bool:
        """Return True if the text after the current commas is `name=`, not a new scheme."""
        saved = self.pos
        self.skip_separators()
        name = self.read_token()
        self.skip_space()
        result = bool(name) and self.peek() == "="
        self.pos = saved
        return result

    def error(self, problem: str) -> AuthenticationError:
        return AuthenticationError(
            f"malformed WWW-Authenticate header {shown(self.text)}: {problem} at offset {self.pos}"
        )


def _parse_params(scanner: _Scanner) -> dict[str, str]:
    params: dict[str, str] = {}
    while True:
        scanner.skip_space()
        if scanner.at_end():
            return params
        if scanner.peek() == ",":
            if not scanner.starts_param():
                return params
            scanner.skip_separators()
        name = scanner.read_token().lower()
        if not name:
            raise scanner.error("expected a parameter name")
        scanner.skip_space()
        if scanner.peek() != "=":
            raise scanner.error(f"expected '=' after parameter {name!r}")
        scanner.pos += 1
        scanner.skip_space()
        value = scanner.read_quoted() if scanner.peek() == '"' else scanner.read_token()
        # RFC 7235 allows each parameter name once per challenge; two realms would leave it
        # open which one a client trusts.
        if name in params:
            raise scanner.error(f"parameter {name!r} repeated")
        params[name] = value
        scanner.skip_space()
        if not scanner.at_end() and scanner.peek() != ",":
            raise scanner.error(f"unexpected {scanner.peek()!r} after parameter {name!r}")


def parse_www_authenticate(values: Iterable[str]) -> list[Challenge]:
    """Parse every challenge in one or more `WWW-Authenticate` header values.

    Raises:
        AuthenticationError: a value is malformed (unterminated quote, missing `=`, repeated
            parameter).

    Returns:
        The challenges in the order they appear.
    """
    challenges: list[Challenge] = []
    for value in values:
        scanner = _Scanner(value)
        while True:
            scanner.skip_separators()
            if scanner.at_end():
                break
            scheme = scanner.read_token()
            if not scheme:
                raise scanner.error("expected an authentication scheme")
            scanner.skip_space()
            token68 = scanner.read_token68()
            params = {} if token68 is not None else _parse_params(scanner)
            challenges.append(Challenge(scheme.lower(), MappingProxyType(params), token68))
    return challenges
