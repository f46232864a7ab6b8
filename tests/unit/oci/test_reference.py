"""Image reference parsing: the docker grammar, normalisation and hostile input."""

from __future__ import annotations

import pytest

from regward.oci.errors import InvalidDigestError, InvalidReferenceError
from regward.oci.reference import (
    Reference,
    normalize_registry,
    parse_reference,
    split_registry,
    validate_repository,
    validate_tag,
)

DIGEST = "sha256:" + "ab" * 32
SHA512 = "sha512:" + "cd" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", None, None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/org/app", "docker.io", "org/app", None, None),
        ("Index.Docker.IO/org/app", "docker.io", "org/app", None, None),
        ("ghcr.io/org/team/app:v1", "ghcr.io", "org/team/app", "v1", None),
        ("GHCR.io/org/app", "ghcr.io", "org/app", None, None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000", "a/b/c", "tag", None),
        ("10.0.0.1/app", "10.0.0.1", "app", None, None),
        ("[::1]:5000/app:v2", "[::1]:5000", "app", "v2", None),
        ("[::1]/app", "[::1]", "app", None, None),
        ("[2001:DB8:0:0::1]:443/app", "[2001:db8::1]:443", "app", None, None),
        ("my-registry.example.com:65535/app", "my-registry.example.com:65535", "app", None, None),
        ("registry:5000/app", "registry:5000", "app", None, None),
        (f"app@{DIGEST}", "docker.io", "library/app", None, DIGEST),
        (f"ex.com/app:v1@{DIGEST}", "ex.com", "app", "v1", DIGEST),
        (f"ex.com/app@{SHA512}", "ex.com", "app", None, SHA512),
        ("ex.com/a.b_c__d-e--f/g", "ex.com", "a.b_c__d-e--f/g", None, None),
        ("ex.com/app:_under.score-Tag", "ex.com", "app", "_under.score-Tag", None),
        ("ex.com/app:" + "t" * 128, "ex.com", "app", "t" * 128, None),
    ],
)
def test_parse_reference_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == digest


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Nginx", "must be lowercase"),
        ("ghcr.io/Org/app", "must be lowercase"),
        ("ex.com/a..b", "each path component"),
        ("ex.com/a___b", "each path component"),
        ("ex.com/-a", "each path component"),
        ("ex.com/a-", "each path component"),
        ("ex.com/.a", "each path component"),
        ("ex.com/a//b", "empty path component"),
        ("ex.com/a/", "empty path component"),
        ("/a", "empty path component"),
        ("ex.com/../etc/passwd", "each path component"),
        ("ex.com/a%2fb", "each path component"),
        ("ex.com/a?x=1", "each path component"),
        ("ex.com/a#frag", "each path component"),
        ("ex.com/app name", "whitespace or control"),
        ("ex.com/app\n", "whitespace or control"),
        ("ex.com/app\x00", "whitespace or control"),
        (" ex.com/app", "whitespace or control"),
        ("ex.com:0/app", "invalid port '0'"),
        ("ex.com:65536/app", "invalid port '65536'"),
        ("ex.com:080/app", "invalid port '080'"),
        ("ex.com:/app", "invalid port ''"),
        ("ex.com:abc/app", "invalid port 'abc'"),
        ("ex.com:-1/app", "invalid port '-1'"),
        ("-ex.com/app", "each dot-separated label"),
        ("ex-.com/app", "each dot-separated label"),
        ("ex..com/app", "each dot-separated label"),
        ("ex_1.com/app", "each dot-separated label"),
        ("256.1.1.1/app", "invalid IPv4 address"),
        ("1.2.3/app", "invalid IPv4 address"),
        ("[::1/app", "without a closing"),
        ("[::g]/app", "invalid IPv6 address"),
        ("[fe80::1%eth0]/app", "zone ids"),
        ("[::1]x/app", "unexpected text"),
        ("[::1]:99999/app", "invalid port"),
        ("ex.com/app:", "invalid tag ''"),
        ("ex.com/app:.tag", "invalid tag"),
        ("ex.com/app:-tag", "invalid tag"),
        ("ex.com/app:ta/g", "each path component"),
        ("ex.com/app:" + "t" * 129, "invalid tag"),
        ("ex.com/app@", "empty digest"),
        ("ex.com/app@sha256:abc", "64 lowercase hex"),
        (f"ex.com/app@{DIGEST}@{DIGEST}", "expected <algorithm>:<hex>"),
        ("ex.com/app@blake3:" + "a" * 64, "unsupported digest algorithm"),
        ("ex.com/app@SHA256:" + "a" * 64, "expected <algorithm>:<hex>"),
        ("ex.com/" + "a" * 250, "the maximum is 255"),
        ("a" * 2000, "the maximum is 1024"),
        ("ex.com/appé", "each path component"),
    ],
)
def test_parse_reference_rejects(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid image reference") as caught:
        parse_reference(text)
    assert reason in str(caught.value)


def test_parse_reference_error_names_input() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference("ghcr.io/Org/app:v1")
    assert "'ghcr.io/Org/app:v1'" in str(caught.value)


def test_parse_reference_uppercase_first_component_is_repository() -> None:
    # Without '.', ':' or "localhost" the first component is a path component, so an
    # uppercase one is a lowercase error instead of an implicit registry host.
    with pytest.raises(InvalidReferenceError, match="must be lowercase"):
        parse_reference("Foo/bar")


def test_parse_reference_name_length_limit_counts_registry() -> None:
    registry = "r" * 10 + ".io"
    fits = registry + "/" + "a" * (255 - len(registry) - 1)
    assert parse_reference(fits).name == fits
    with pytest.raises(InvalidReferenceError, match="the maximum is 255"):
        parse_reference(fits + "a")


def test_parse_reference_library_prefix_counts_in_length() -> None:
    with pytest.raises(InvalidReferenceError, match="the maximum is 255"):
        parse_reference("a" * 246)


def test_parse_reference_custom_default_registry() -> None:
    ref = parse_reference("app:v1", default_registry="127.0.0.1:5000")
    assert str(ref) == "127.0.0.1:5000/app:v1"


def test_parse_reference_rejects_invalid_default_registry() -> None:
    with pytest.raises(InvalidReferenceError, match="invalid registry"):
        parse_reference("app", default_registry="bad host")


def test_str_is_canonical_and_round_trips() -> None:
    ref = parse_reference(f"Index.docker.io/nginx:1.25@{DIGEST}")
    assert str(ref) == f"docker.io/library/nginx:1.25@{DIGEST}"
    assert parse_reference(str(ref)) == ref


def test_name_and_reference_properties() -> None:
    ref = parse_reference("ghcr.io/org/app")
    assert ref.name == "ghcr.io/org/app"
    assert ref.reference == "latest"
    assert ref.with_tag("v1").reference == "v1"
    assert ref.with_tag("v1").with_digest(DIGEST).reference == DIGEST


def test_with_digest_keeps_tag() -> None:
    ref = parse_reference("ghcr.io/org/app:v1").with_digest(DIGEST)
    assert ref.tag == "v1"
    assert ref.digest == DIGEST
    assert str(ref) == f"ghcr.io/org/app:v1@{DIGEST}"


def test_with_digest_rejects_bad_digest() -> None:
    with pytest.raises(InvalidDigestError):
        parse_reference("ghcr.io/org/app").with_digest("sha256:nope")


def test_with_tag_rejects_bad_tag() -> None:
    with pytest.raises(InvalidReferenceError, match="invalid tag"):
        parse_reference("ghcr.io/org/app").with_tag("bad tag")


def test_reference_constructor_normalises() -> None:
    ref = Reference("Index.Docker.io", "nginx", None, None)
    assert ref == parse_reference("nginx")
    assert hash(ref) == hash(parse_reference("nginx"))


@pytest.mark.parametrize(
    ("registry", "repository", "tag", "digest"),
    [
        ("bad host", "app", None, None),
        ("ex.com", "App", None, None),
        ("ex.com", "app", "bad tag", None),
        ("ex.com", "app", None, "sha256:1"),
    ],
)
def test_reference_constructor_validates(
    registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid image reference"):
        Reference(registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("registry", "canonical"),
    [
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("LOCALHOST:5000", "localhost:5000"),
        ("[0:0:0:0:0:0:0:1]:5000", "[::1]:5000"),
        ("docker.io:443", "docker.io:443"),
    ],
)
def test_normalize_registry(registry: str, canonical: str) -> None:
    assert normalize_registry(registry) == canonical


def test_split_registry_parts() -> None:
    assert split_registry("[::1]:5000") == ("[::1]", 5000)
    assert split_registry("Example.com") == ("example.com", None)


def test_validate_repository_and_tag() -> None:
    assert validate_repository("org/app") == "org/app"
    assert validate_tag("v1.0_rc-1") == "v1.0_rc-1"
    with pytest.raises(InvalidReferenceError, match="empty"):
        validate_repository("")
    with pytest.raises(InvalidReferenceError):
        validate_tag("")
