"""Manifest and index parsing: valid documents, media type resolution and malformed input."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from regward.oci.digest import Digest
from regward.oci.errors import ManifestError, TooLargeError
from regward.oci.manifest import Descriptor, Platform, parse_manifest
from regward.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1_SIGNED,
    DOCKER_MANIFEST_V2,
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    base_media_type,
    check_manifest_media_type,
)

CONFIG_DIGEST = "sha256:" + "1" * 64
LAYER_DIGEST = "sha256:" + "2" * 64
CHILD_DIGEST = "sha256:" + "3" * 64
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def image_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": 100},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": LAYER_DIGEST, "size": 2000}],
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def index_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": CHILD_DIGEST,
                "size": 500,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            }
        ],
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_parse_oci_image_manifest() -> None:
    raw = encode(image_body(annotations={"org.opencontainers.image.created": "2024-01-01"}))
    manifest = parse_manifest(raw, OCI_MANIFEST)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert manifest.raw == raw
    assert not manifest.is_index
    assert manifest.config == Descriptor(OCI_CONFIG, Digest(CONFIG_DIGEST), 100)
    assert [layer.digest for layer in manifest.layers] == [LAYER_DIGEST]
    assert manifest.manifests == ()
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01"}
    assert manifest.blob_digests() == frozenset({CONFIG_DIGEST, LAYER_DIGEST})


def test_parse_docker_manifest_v2() -> None:
    body = image_body(
        mediaType=DOCKER_MANIFEST_V2,
        config={"mediaType": DOCKER_CONFIG, "digest": CONFIG_DIGEST, "size": 1},
        layers=[{"mediaType": DOCKER_LAYER, "digest": LAYER_DIGEST, "size": 2}],
    )
    manifest = parse_manifest(encode(body), DOCKER_MANIFEST_V2)
    assert manifest.media_type == DOCKER_MANIFEST_V2
    assert manifest.blob_digests() == frozenset({CONFIG_DIGEST, LAYER_DIGEST})


def test_parse_oci_index_with_platform() -> None:
    manifest = parse_manifest(encode(index_body()), OCI_INDEX)
    assert manifest.is_index
    assert manifest.config is None
    assert manifest.blob_digests() == frozenset()
    (child,) = manifest.manifests
    assert child.digest == CHILD_DIGEST
    assert child.platform == Platform("arm64", "linux", "v8")


def test_parse_docker_manifest_list() -> None:
    manifest = parse_manifest(encode(index_body(mediaType=DOCKER_MANIFEST_LIST)))
    assert manifest.is_index
    assert manifest.media_type == DOCKER_MANIFEST_LIST


def test_parse_artifact_manifest_with_subject() -> None:
    body = image_body(
        artifactType=BUNDLE_TYPE,
        config={"mediaType": OCI_EMPTY, "digest": CONFIG_DIGEST, "size": 2},
        layers=[{"mediaType": BUNDLE_TYPE, "digest": LAYER_DIGEST, "size": 5}],
        subject={"mediaType": OCI_MANIFEST, "digest": CHILD_DIGEST, "size": 500},
    )
    manifest = parse_manifest(encode(body))
    assert manifest.artifact_type == BUNDLE_TYPE
    assert manifest.effective_artifact_type == BUNDLE_TYPE
    assert manifest.subject is not None
    assert manifest.subject.digest == CHILD_DIGEST
    descriptor = manifest.descriptor()
    assert descriptor.digest == manifest.digest
    assert descriptor.size == len(manifest.raw)
    assert descriptor.artifact_type == BUNDLE_TYPE


def test_effective_artifact_type_falls_back_to_config() -> None:
    body = image_body(
        config={"mediaType": "application/x-custom", "digest": CONFIG_DIGEST, "size": 1}
    )
    assert parse_manifest(encode(body)).effective_artifact_type == "application/x-custom"


def test_descriptor_optional_fields() -> None:
    layer = {
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "digest": LAYER_DIGEST,
        "size": 0,
        "urls": ["https://example.com/layer"],
        "annotations": {"a": "b"},
        "artifactType": BUNDLE_TYPE,
        "data": "e30=",
    }
    (parsed,) = parse_manifest(encode(image_body(layers=[layer]))).layers
    assert parsed.media_type == "application/vnd.dev.sigstore.bundle+json;version=0.3"
    assert parsed.urls == ("https://example.com/layer",)
    assert parsed.annotations == {"a": "b"}
    assert parsed.artifact_type == BUNDLE_TYPE


def test_platform_os_fields() -> None:
    child = {
        "mediaType": OCI_MANIFEST,
        "digest": CHILD_DIGEST,
        "size": 1,
        "platform": {
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.17763.1",
            "os.features": ["win32k"],
        },
    }
    (parsed,) = parse_manifest(encode(index_body(manifests=[child]))).manifests
    assert parsed.platform == Platform("amd64", "windows", None, "10.0.17763.1", ("win32k",))


def test_descriptor_is_hashable() -> None:
    manifest = parse_manifest(encode(image_body()))
    assert len({manifest.layers[0], manifest.layers[0]}) == 1


def test_empty_layers_allowed() -> None:
    assert parse_manifest(encode(image_body(layers=[]))).layers == ()


# Media type resolution between the body and the Content-Type header.


def test_header_parameters_and_case_ignored() -> None:
    raw = encode(image_body())
    manifest = parse_manifest(raw, "Application/VND.oci.image.manifest.v1+json; charset=utf-8")
    assert manifest.media_type == OCI_MANIFEST


def test_body_header_mismatch_rejected() -> None:
    with pytest.raises(ManifestError, match="contradicts Content-Type"):
        parse_manifest(encode(image_body()), OCI_INDEX)


def test_docker_body_with_oci_header_rejected() -> None:
    body = image_body(mediaType=DOCKER_MANIFEST_V2)
    with pytest.raises(ManifestError, match="contradicts Content-Type"):
        parse_manifest(encode(body), OCI_MANIFEST)


@pytest.mark.parametrize("header", [None, "application/json", "application/octet-stream"])
def test_generic_or_missing_header_uses_body(header: str | None) -> None:
    assert parse_manifest(encode(image_body()), header).media_type == OCI_MANIFEST


@pytest.mark.parametrize(("body", "header"), [(image_body, OCI_MANIFEST), (index_body, OCI_INDEX)])
def test_oci_without_media_type_uses_header(body: Any, header: str) -> None:
    assert parse_manifest(encode(body(mediaType=None)), header).media_type == header


@pytest.mark.parametrize("header", [None, "application/json"])
def test_oci_without_media_type_or_header_rejected(header: str | None) -> None:
    with pytest.raises(ManifestError, match="no mediaType in the body or Content-Type"):
        parse_manifest(encode(image_body(mediaType=None)), header)


def test_docker_header_without_body_media_type_rejected() -> None:
    with pytest.raises(ManifestError, match="is not an OCI manifest or index type"):
        parse_manifest(encode(image_body(mediaType=None)), DOCKER_MANIFEST_V2)


def test_unsupported_media_type_rejected() -> None:
    body = image_body(mediaType="application/vnd.oci.artifact.manifest.v1+json")
    with pytest.raises(ManifestError, match="unsupported media type"):
        parse_manifest(encode(body))


def test_schema1_by_version_rejected() -> None:
    raw = encode({"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []})
    with pytest.raises(ManifestError, match="Docker schema 1"):
        parse_manifest(raw, DOCKER_MANIFEST_V1_SIGNED)


def test_schema1_by_header_rejected() -> None:
    with pytest.raises(ManifestError, match="Docker schema 1"):
        parse_manifest(encode(image_body(mediaType=None)), DOCKER_MANIFEST_V1_SIGNED)


def test_schema1_by_body_media_type_rejected() -> None:
    with pytest.raises(ManifestError, match="Docker schema 1"):
        parse_manifest(encode(image_body(mediaType=DOCKER_MANIFEST_V1_SIGNED)))


# Shapes that do not match the declared type.


@pytest.mark.parametrize("key", ["config", "layers"])
def test_index_with_image_fields_rejected(key: str) -> None:
    extra = image_body()[key]
    with pytest.raises(ManifestError, match=f"{key} must not appear in an index"):
        parse_manifest(encode(index_body(**{key: extra})))


def test_image_with_manifests_rejected() -> None:
    with pytest.raises(ManifestError, match="manifests must not appear in an image manifest"):
        parse_manifest(encode(image_body(manifests=[])))


@pytest.mark.parametrize("key", ["config", "layers"])
def test_image_missing_required_field(key: str) -> None:
    with pytest.raises(ManifestError, match=f"{key} is required in an image manifest"):
        parse_manifest(encode(image_body(**{key: None})))


def test_index_missing_manifests() -> None:
    with pytest.raises(ManifestError, match="manifests is required in an index"):
        parse_manifest(encode(index_body(manifests=None)))


# Malformed documents and fields; each error names the field path.


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "expected a JSON object, got an array"),
        (b'"text"', "expected a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"\xef\xbb\xbf" + encode(image_body()), "not valid JSON"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', "duplicate key 'schemaVersion'"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        (b'{"size": 1' + b"0" * 5000 + b"}", "not valid JSON: Exceeds the limit"),
    ],
)
def test_malformed_json_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw)


def test_duplicate_key_in_nested_descriptor_rejected() -> None:
    raw = encode(image_body()).replace(
        b'"size": 100', b'"size": 100, "digest": "' + LAYER_DIGEST.encode() + b'"'
    )
    with pytest.raises(ManifestError, match="duplicate key 'digest'"):
        parse_manifest(raw)


@pytest.mark.parametrize(
    ("version", "shown"),
    [(None, "null"), (3, "3"), ("2", "'2'"), (2.0, "2.0"), (True, "boolean")],
)
def test_schema_version_must_be_two(version: object, shown: str) -> None:
    raw = encode(image_body(schemaVersion=version))
    with pytest.raises(ManifestError, match="schemaVersion must be 2") as caught:
        parse_manifest(raw)
    assert shown in str(caught.value)


def bad_layer(**fields: Any) -> bytes:
    layer: dict[str, Any] = {"mediaType": OCI_LAYER_GZIP, "digest": LAYER_DIGEST, "size": 1}
    layer.update(fields)
    layer = {key: value for key, value in layer.items() if value is not None}
    return encode(
        image_body(layers=[{"mediaType": OCI_LAYER_GZIP, "digest": LAYER_DIGEST, "size": 1}, layer])
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bad_layer(size=-1), "layers[1].size must be a non-negative integer, got -1"),
        (bad_layer(size=1.5), "layers[1].size must be a non-negative integer, got 1.5"),
        (bad_layer(size="1"), "layers[1].size must be a non-negative integer"),
        (bad_layer(size=True), "layers[1].size must be a non-negative integer, got True"),
        (bad_layer(size=None), "layers[1].size must be a non-negative integer, got None"),
        (bad_layer(size=2**63), "layers[1].size must fit in int64"),
        (bad_layer(digest=None), "layers[1].digest must be a string, got null"),
        (bad_layer(digest="sha256:abc"), "layers[1].digest is not a valid digest"),
        (bad_layer(digest="md5:" + "a" * 32), "unsupported digest algorithm"),
        (bad_layer(digest=5), "layers[1].digest must be a string, got the number 5"),
        (bad_layer(mediaType=None), "layers[1].mediaType must be a string"),
        (bad_layer(mediaType="gzip"), "layers[1].mediaType must be a media type"),
        (bad_layer(mediaType="a/b\n"), "layers[1].mediaType must be a media type"),
        (bad_layer(annotations=[]), "layers[1].annotations must be an object"),
        (bad_layer(annotations={"k": 1}), "layers[1].annotations['k'] must be a string"),
        (bad_layer(urls="https://x"), "layers[1].urls must be an array"),
        (bad_layer(urls=[1]), "layers[1].urls[0] must be a string"),
        (bad_layer(artifactType=7), "layers[1].artifactType must be a string"),
        (bad_layer(platform="linux"), "layers[1].platform must be an object"),
        (bad_layer(platform={"os": "linux"}), "layers[1].platform.architecture must be a string"),
        (encode(image_body(layers={})), "layers must be an array"),
        (encode(image_body(layers=["x"])), "layers[0] must be an object, got the string 'x'"),
        (encode(image_body(config=[])), "config must be an object, got an array"),
        (encode(image_body(subject="x")), "subject must be an object"),
        (encode(image_body(artifactType=[])), "artifactType must be a string"),
        (encode(image_body(annotations="x")), "annotations must be an object"),
        (encode(image_body(mediaType=5)), "mediaType must be a string"),
        (encode(index_body(manifests=[None])), "manifests[0] must be an object, got null"),
    ],
)
def test_malformed_fields_named_by_path(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(raw)
    assert message in str(caught.value)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() in str(caught.value)


def test_oversized_manifest_rejected_before_parsing() -> None:
    raw = b"x" * 101
    with pytest.raises(TooLargeError, match="manifest is 101 bytes, the maximum is 100") as caught:
        parse_manifest(raw, max_size=100)
    assert caught.value.limit == 100
    assert caught.value.size == 101


def test_manifest_at_size_limit_accepted() -> None:
    raw = encode(image_body())
    assert parse_manifest(raw, max_size=len(raw)).raw == raw


def test_sha512_digest_algorithm() -> None:
    raw = encode(image_body())
    manifest = parse_manifest(raw, algorithm="sha512")
    assert manifest.digest == "sha512:" + hashlib.sha512(raw).hexdigest()


# Media type helpers.


def test_manifest_accept_lists_four_types() -> None:
    accepted = [item.strip() for item in MANIFEST_ACCEPT.split(",")]
    assert sorted(accepted) == sorted(
        [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2]
    )


def test_base_media_type_strips_parameters() -> None:
    assert base_media_type(" Application/JSON ; charset=utf-8") == "application/json"


def test_check_manifest_media_type() -> None:
    assert check_manifest_media_type(OCI_INDEX + "; x=y") == OCI_INDEX
    with pytest.raises(ManifestError, match="Docker schema 1"):
        check_manifest_media_type(DOCKER_MANIFEST_V1_SIGNED)
    with pytest.raises(ManifestError, match="unsupported media type 'text/html'"):
        check_manifest_media_type("text/html")
