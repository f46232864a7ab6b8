"""OCI and Docker schema 2 manifests and indexes: strict parsing into frozen values.

`parse_manifest` accepts exactly the bytes a registry served and keeps them (`Manifest.raw`),
because the gate serves the bytes it verified. It rejects anything whose meaning could differ
between parsers: duplicate JSON keys, a body `mediaType` that contradicts the `Content-Type`
header, an index that also carries `config` or `layers`, and Docker schema 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from regward.oci._text import shown
from regward.oci.digest import Digest, compute_digest, parse_digest
from regward.oci.errors import InvalidDigestError, ManifestError, TooLargeError
from regward.oci.mediatypes import (
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MEDIA_TYPES,
    base_media_type,
    check_manifest_media_type,
)

DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024
"""Default limit on manifest size in bytes: distribution 2.8 rejects pushes above 4 MiB."""

MAX_DESCRIPTOR_SIZE = 2**63 - 1
"""Descriptor sizes are int64 in the image spec."""

# Content-Type values that carry no information about the manifest type. Some servers send them
# for any JSON body, so they are treated like a missing header instead of a contradiction.
_GENERIC_CONTENT_TYPES = frozenset(
    {"", "application/json", "application/octet-stream", "text/plain"}
)

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Platform:
    """The platform an index entry is built for."""

    architecture: str
    """CPU architecture in Go's GOARCH terms, such as `amd64` or `arm64`."""
    os: str
    """Operating system in Go's GOOS terms, such as `linux`."""
    variant: str | None = None
    """CPU variant, such as `v8` for arm64."""
    os_version: str | None = None
    """Operating system version (`os.version`), used by Windows images."""
    os_features: tuple[str, ...] = ()
    """Required operating system features (`os.features`)."""


@dataclass(frozen=True)
class Descriptor:
    """A reference to content by media type, digest and size (OCI image spec, descriptor.md)."""

    media_type: str
    """Media type of the referenced content, as written (parameters kept)."""
    digest: Digest
    """Digest of the referenced content."""
    size: int
    """Size of the referenced content in bytes."""
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    """Annotations of the descriptor."""
    artifact_type: str | None = None
    """Artifact type (`artifactType`), set on referrer entries and artifact manifests."""
    platform: Platform | None = None
    """Platform of an index entry."""
    urls: tuple[str, ...] = ()
    """Alternative download locations of the content (foreign layers)."""


@dataclass(frozen=True)
class Manifest:
    """A parsed image manifest or index, together with the exact bytes it was parsed from."""

    media_type: str
    """One of `ALL_MANIFEST_MEDIA_TYPES`, from the body or else from the Content-Type header."""
    digest: Digest
    """Digest of `raw`."""
    raw: bytes = field(repr=False)
    """The bytes as served; the only bytes that match `digest`."""
    config: Descriptor | None = None
    """The config blob of an image manifest; None for an index."""
    layers: tuple[Descriptor, ...] = ()
    """The layer blobs of an image manifest, in order; empty for an index."""
    manifests: tuple[Descriptor, ...] = ()
    """The entries of an index; empty for an image manifest."""
    subject: Descriptor | None = None
    """The manifest this one refers to (OCI 1.1 referrers), if any."""
    artifact_type: str | None = None
    """The `artifactType` field, if present."""
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    """Annotations of the manifest."""

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or a Docker manifest list."""
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def effective_artifact_type(self) -> str | None:
        """`artifactType`, or else the config media type, as the referrers API reports it."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None:
            return self.config.media_type
        return None

    def blob_digests(self) -> frozenset[str]:
        """Digests of the config and layer blobs; empty for an index."""
        digests: set[str] = {layer.digest for layer in self.layers}
        if self.config is not None:
            digests.add(self.config.digest)
        return frozenset(digests)

    def descriptor(self) -> Descriptor:
        """Build the descriptor of this manifest that an index or a referrers list would contain."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=len(self.raw),
            annotations=self.annotations,
            artifact_type=self.effective_artifact_type,
        )


class _Parser:
    """Walks one decoded manifest and raises ManifestError naming the field path."""

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def fail(self, path: str, problem: str) -> ManifestError:
        return ManifestError(f"invalid manifest {self.digest}: {path} {problem}")

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {_json_type(value)}")
        return value

    def optional_string(self, body: Mapping[str, object], key: str, path: str) -> str | None:
        value = body.get(key)
        if value is None:
            return None
        return self.string(value, path)

    def media_type(self, value: object, path: str) -> str:
        text = self.string(value, path)
        # RFC 6838 type "/" subtype, optionally followed by parameters; no control characters.
        base = base_media_type(text)
        kind, slash, subtype = base.partition("/")
        if not slash or not kind or not subtype or not text.isprintable():
            raise self.fail(path, f"must be a media type such as type/subtype, got {shown(text)}")
        return text

    def string_map(self, value: object, path: str) -> Mapping[str, str]:
        if value is None:
            return _EMPTY
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {_json_type(value)}")
        for key, item in value.items():
            self.string(item, f"{path}[{key!r}]")
        return MappingProxyType(dict(value))

    def strings(self, value: object, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, f"must be an array, got {_json_type(value)}")
        return tuple(self.string(item, f"{path}[{index}]") for index, item in enumerate(value))

    def platform(self, value: object, path: str) -> Platform | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {_json_type(value)}")
        return Platform(
            architecture=self.string(value.get("architecture"), f"{path}.architecture"),
            os=self.string(value.get("os"), f"{path}.os"),
            variant=self.optional_string(value, "variant", f"{path}.variant"),
            os_version=self.optional_string(value, "os.version", f"{path}['os.version']"),
            os_features=self.strings(value.get("os.features"), f"{path}['os.features']"),
        )

    def descriptor(self, value: object, path: str) -> Descriptor:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {_json_type(value)}")
        digest_text = self.string(value.get("digest"), f"{path}.digest")
        try:
            digest = parse_digest(digest_text)
        except InvalidDigestError as exc:
            raise self.fail(f"{path}.digest", f"is not a valid digest: {exc}") from exc
        size = value.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise self.fail(f"{path}.size", f"must be a non-negative integer, got {shown(size)}")
        if size > MAX_DESCRIPTOR_SIZE:
            raise self.fail(f"{path}.size", f"must fit in int64, got {size}")
        artifact_type = value.get("artifactType")
        return Descriptor(
            media_type=self.media_type(value.get("mediaType"), f"{path}.mediaType"),
            digest=digest,
            size=size,
            annotations=self.string_map(value.get("annotations"), f"{path}.annotations"),
            artifact_type=None
            if artifact_type is None
            else self.media_type(artifact_type, f"{path}.artifactType"),
            platform=self.platform(value.get("platform"), f"{path}.platform"),
            urls=self.strings(value.get("urls"), f"{path}.urls"),
        )

    def descriptors(self, value: object, path: str) -> tuple[Descriptor, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be an array, got {_json_type(value)}")
        return tuple(self.descriptor(item, f"{path}[{index}]") for index, item in enumerate(value))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {shown(value)}"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key {shown(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _decode(raw: bytes, digest: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        body = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except UnicodeDecodeError as exc:
        raise ManifestError(f"invalid manifest {digest}: not UTF-8 ({exc.reason})") from exc
    except RecursionError as exc:
        raise ManifestError(f"invalid manifest {digest}: JSON nested too deeply") from exc
    except ValueError as exc:
        # json.JSONDecodeError, duplicate keys, NaN/Infinity and over-long integers.
        raise ManifestError(f"invalid manifest {digest}: not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ManifestError(
            f"invalid manifest {digest}: expected a JSON object, got {_json_type(body)}"
        )
    return body


def _resolve_media_type(body: Mapping[str, Any], content_type: str | None, digest: str) -> str:
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError(
            f"invalid manifest {digest}: mediaType must be a string, got {_json_type(declared)}"
        )
    header = base_media_type(content_type) if content_type is not None else ""
    if header in _GENERIC_CONTENT_TYPES:
        header = ""
    subject = f"manifest {digest}"

    if declared is not None:
        media_type = check_manifest_media_type(declared, subject=subject)
        if header and header != media_type:
            raise ManifestError(
                f"invalid manifest {digest}: body mediaType {media_type} contradicts "
                f"Content-Type {header}"
            )
        return media_type
    if header in SCHEMA1_MEDIA_TYPES:
        check_manifest_media_type(header, subject=subject)
    if header in (OCI_MANIFEST, OCI_INDEX):
        # The OCI image spec lets mediaType be omitted; the header then carries the type.
        return header
    if header:
        raise ManifestError(
            f"invalid manifest {digest}: no mediaType in the body and Content-Type "
            f"{shown(header)} is not an OCI manifest or index type"
        )
    raise ManifestError(f"invalid manifest {digest}: no mediaType in the body or Content-Type")


def parse_manifest(
    raw: bytes,
    content_type: str | None = None,
    *,
    max_size: int = DEFAULT_MAX_MANIFEST_SIZE,
    algorithm: str = "sha256",
) -> Manifest:
    """Parse and validate manifest or index bytes.

    Steps, in order:

    1. Reject bodies larger than `max_size`.
    2. Compute the digest of `raw`.
    3. Decode strict JSON: UTF-8, an object, no duplicate keys, no NaN.
    4. Require `schemaVersion` 2 and reject Docker schema 1.
    5. Take the media type from the body `mediaType`, else from an OCI `content_type`, and
       reject a contradiction between the two.
    6. Check that the fields match the type. An index has `manifests` and no `config` or
       `layers`, and an image manifest the reverse.
    7. Validate every descriptor.

    Args:
        raw: the manifest bytes exactly as served.
        content_type: the Content-Type header the bytes came with, if any.
        max_size: the maximum accepted size in bytes.
        algorithm: the digest algorithm for `Manifest.digest`.

    Raises:
        TooLargeError: `raw` is larger than `max_size`.
        ManifestError: the bytes are not a valid manifest of a supported type; the message
            names the field path, such as `layers[2].size`.
        InvalidDigestError: `algorithm` is neither sha256 nor sha512.

    Returns:
        The parsed manifest.
    """
    # (1): size, before any parsing work.
    if len(raw) > max_size:
        raise TooLargeError(
            f"manifest is {len(raw)} bytes, the maximum is {max_size}",
            limit=max_size,
            size=len(raw),
        )

    # (2): the digest identifies the manifest in every later message.
    digest = compute_digest(raw, algorithm)

    # (3): strict JSON.
    body = _decode(raw, digest)

    # (4): schema version; schema 1 also carries schemaVersion 1.
    version = body.get("schemaVersion")
    if version == 1 and not isinstance(version, bool):
        raise ManifestError(
            f"invalid manifest {digest}: schemaVersion 1 is Docker schema 1, which is not "
            "supported; push the image again with a current client"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version != 2:
        raise ManifestError(
            f"invalid manifest {digest}: schemaVersion must be 2, got {_json_type(version)}"
        )

    # (5): media type from body and header.
    media_type = _resolve_media_type(body, content_type, digest)
    parser = _Parser(digest)

    # (6): the fields must fit the type.
    is_index = media_type in INDEX_MEDIA_TYPES
    if is_index:
        for key in ("config", "layers"):
            if key in body:
                raise parser.fail(key, f"must not appear in an index ({media_type})")
        if "manifests" not in body:
            raise parser.fail("manifests", f"is required in an index ({media_type})")
    else:
        if "manifests" in body:
            raise parser.fail("manifests", f"must not appear in an image manifest ({media_type})")
        for key in ("config", "layers"):
            if key not in body:
                raise parser.fail(key, f"is required in an image manifest ({media_type})")

    # (7): descriptors and the remaining optional fields.
    subject_value = body.get("subject")
    artifact_type = body.get("artifactType")
    return Manifest(
        media_type=media_type,
        digest=digest,
        raw=raw,
        config=None if is_index else parser.descriptor(body["config"], "config"),
        layers=() if is_index else parser.descriptors(body["layers"], "layers"),
        manifests=parser.descriptors(body["manifests"], "manifests") if is_index else (),
        subject=None if subject_value is None else parser.descriptor(subject_value, "subject"),
        artifact_type=None
        if artifact_type is None
        else parser.media_type(artifact_type, "artifactType"),
        annotations=parser.string_map(body.get("annotations"), "annotations"),
    )
