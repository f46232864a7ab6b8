"""Image references such as `ghcr.io/org/app:v1@sha256:…`: parsing and canonical form.

The grammar is Docker's (distribution/reference):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ registry "/" ] repository
    registry   := host [ ":" port ]       host: DNS name, IPv4 literal or "[" IPv6 "]"
    repository := component ( "/" component )*
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}

The first path component is a registry only if it contains "." or ":" or is "localhost";
otherwise the default registry applies. Docker Hub's aliases become `docker.io`, and a Docker Hub
repository with a single component gets the `library/` prefix. The canonical form lower-cases
the registry host and writes IPv6 literals in compressed form, so equal images compare equal.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from regward.oci._text import shown
from regward.oci.digest import parse_digest
from regward.oci.errors import InvalidDigestError, InvalidReferenceError

DOCKER_HUB = "docker.io"
"""The canonical registry name of Docker Hub."""
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
"""Registry names that all mean Docker Hub."""
MAX_NAME_LENGTH = 255
"""Maximum length of `registry/repository`, as in distribution."""
MAX_TAG_LENGTH = 128
"""Maximum length of a tag."""

_MAX_INPUT_LENGTH = 1024
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")


class _ReasonError(InvalidReferenceError):
    """One rule that a part of a reference breaks; callers add the whole input to the message."""


def _canonical_port(text: str) -> int:
    if not _PORT_RE.fullmatch(text) or int(text) > 65535:
        raise _ReasonError(f"invalid port {shown(text)}: expected a number from 1 to 65535")
    return int(text)


def _canonical_ipv6(registry: str) -> tuple[str, int | None]:
    end = registry.find("]")
    if end == -1:
        raise _ReasonError(f"invalid registry {shown(registry)}: '[' without a closing ']'")
    inner, rest = registry[1:end], registry[end + 1 :]
    if "%" in inner:
        raise _ReasonError(f"invalid registry {shown(registry)}: IPv6 zone ids are not allowed")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError as exc:
        raise _ReasonError(f"invalid IPv6 address {shown(inner)} in registry") from exc
    if rest == "":
        return f"[{address.compressed}]", None
    if not rest.startswith(":"):
        raise _ReasonError(f"invalid registry {shown(registry)}: unexpected text after ']'")
    return f"[{address.compressed}]", _canonical_port(rest[1:])


def _canonical_hostname(host: str) -> str:
    host = host.lower()
    if not host or len(host) > 253:
        raise _ReasonError(f"invalid registry host {shown(host)}: expected 1 to 253 characters")
    labels = host.split(".")
    for label in labels:
        if not _DNS_LABEL_RE.fullmatch(label):
            raise _ReasonError(
                f"invalid registry host {shown(host)}: each dot-separated label must be 1 to 63 "
                "letters, digits or '-', not starting or ending with '-'"
            )
    # A top-level label is never all digits, so such a name must be an IPv4 literal.
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise _ReasonError(f"invalid IPv4 address {shown(host)} in registry") from exc
    return host


def split_registry(registry: str) -> tuple[str, int | None]:
    """Split a registry name into its canonical host and its port.

    IPv6 hosts keep their brackets, such as `[::1]`.

    Raises:
        InvalidReferenceError: the registry is not a valid `host[:port]`.
    """
    if registry.startswith("["):
        return _canonical_ipv6(registry)
    host, separator, port = registry.partition(":")
    return _canonical_hostname(host), _canonical_port(port) if separator else None


def normalize_registry(registry: str) -> str:
    """Return the canonical form of a registry name such as `Index.Docker.io` or `[::1]:5000`.

    Raises:
        InvalidReferenceError: the registry is not a valid `host[:port]`.
    """
    try:
        host, port = split_registry(registry)
    except _ReasonError as exc:
        raise InvalidReferenceError(f"invalid registry {shown(registry)}: {exc}") from exc
    if port is None and host in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return host if port is None else f"{host}:{port}"


def validate_repository(repository: str) -> str:
    """Return `repository` if it is a valid repository path, such as `org/app`.

    Raises:
        InvalidReferenceError: the name breaks the repository grammar.
    """
    if not repository:
        raise InvalidReferenceError(f"invalid repository {shown(repository)}: empty")
    if _REPOSITORY_RE.fullmatch(repository):
        return repository
    if repository != repository.lower():
        raise InvalidReferenceError(f"invalid repository {shown(repository)}: must be lowercase")
    if "" in repository.split("/"):
        raise InvalidReferenceError(f"invalid repository {shown(repository)}: empty path component")
    raise InvalidReferenceError(
        f"invalid repository {shown(repository)}: each path component must be lowercase letters "
        "and digits separated by '.', '_', '__' or '-'"
    )


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag: 1 to 128 of [A-Za-z0-9_.-], not starting with . or -.

    Raises:
        InvalidReferenceError: the tag breaks the tag grammar.
    """
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReferenceError(
            f"invalid tag {shown(tag)}: expected 1 to {MAX_TAG_LENGTH} letters, digits, "
            "'_', '.' or '-', not starting with '.' or '-'"
        )
    return tag


def _canonical_name(registry: str, repository: str) -> tuple[str, str]:
    registry = normalize_registry(registry)
    validate_repository(repository)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    length = len(registry) + 1 + len(repository)
    if length > MAX_NAME_LENGTH:
        raise _ReasonError(f"name is {length} characters long, the maximum is {MAX_NAME_LENGTH}")
    return registry, repository


@dataclass(frozen=True)
class Reference:
    """A parsed image reference in canonical form.

    Constructing one directly validates and canonicalizes the parts the same way
    `parse_reference` does, except that the default registry is never filled in.
    """

    registry: str
    """Registry host with optional port, such as `docker.io` or `127.0.0.1:5000`."""
    repository: str
    """Repository path inside the registry, such as `library/nginx`."""
    tag: str | None = None
    """Tag, if the reference names one."""
    digest: str | None = None
    """Manifest digest, if the reference names one."""

    def __post_init__(self) -> None:
        try:
            registry, repository = _canonical_name(self.registry, self.repository)
            if self.tag is not None:
                validate_tag(self.tag)
            if self.digest is not None:
                parse_digest(self.digest)
        except (InvalidReferenceError, InvalidDigestError) as exc:
            raise InvalidReferenceError(
                f"invalid image reference {shown(self._joined())}: {exc}"
            ) from exc
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)

    def _joined(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self._joined()

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to put in a manifest URL: the digest if present, else the tag, else `latest`."""
        if self.digest is not None:
            return self.digest
        if self.tag is not None:
            return self.tag
        return "latest"

    def with_digest(self, digest: str) -> Reference:
        """Return a copy that names `digest`, keeping the tag.

        Raises:
            InvalidDigestError: `digest` is not a valid supported digest.
        """
        return replace(self, digest=parse_digest(digest))

    def with_tag(self, tag: str | None) -> Reference:
        """Return a copy with `tag` in place of the current tag (None removes it).

        Raises:
            InvalidReferenceError: `tag` is not a valid tag.
        """
        return replace(self, tag=tag)


def _split_domain(name: str, default_registry: str) -> tuple[str, str]:
    first, separator, rest = name.partition("/")
    if separator and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return default_registry, name


def parse_reference(text: str, *, default_registry: str = DOCKER_HUB) -> Reference:
    """Parse an image reference such as `nginx`, `localhost:5000/app:v1` or `app@sha256:…`.

    Args:
        text: the reference.
        default_registry: the registry to use when the first path component is not a host.

    Raises:
        InvalidReferenceError: the reference breaks the grammar; the message names the input
            and the rule.

    Returns:
        The canonical reference.
    """
    if not isinstance(text, str):
        raise InvalidReferenceError(f"invalid image reference {shown(text)}: expected a string")
    try:
        registry, repository, tag, digest = _split_reference(text, default_registry)
        registry, repository = _canonical_name(registry, repository)
    except (InvalidReferenceError, InvalidDigestError) as exc:
        raise InvalidReferenceError(f"invalid image reference {shown(text)}: {exc}") from exc
    return Reference(registry, repository, tag, digest)


def _split_reference(text: str, default_registry: str) -> tuple[str, str, str | None, str | None]:
    if not text:
        raise _ReasonError("empty")
    if len(text) > _MAX_INPUT_LENGTH:
        raise _ReasonError(f"{len(text)} characters long, the maximum is {_MAX_INPUT_LENGTH}")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise _ReasonError("contains whitespace or control characters")

    name, at, digest_text = text.partition("@")
    digest: str | None = None
    if at:
        if not digest_text:
            raise _ReasonError("empty digest after '@'")
        digest = parse_digest(digest_text)

    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        tag = validate_tag(name[colon + 1 :])
        name = name[:colon]
    if not name:
        raise _ReasonError("missing repository name")

    registry, repository = _split_domain(name, default_registry)
    return registry, repository, tag, digest
