"""sign_image and check_authorities against a real docker-registry on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.signatures import (
    COSIGN_SIGNATURE_ARTIFACT_TYPE,
    MAX_PAYLOAD_SIZE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    EvidenceStatus,
    KeyAuthority,
    check_authorities,
    generate_keypair,
    key_id,
    load_public_key,
    make_payload,
    sign_image,
    sign_payload,
    signature_tag,
)
from tests.support.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    push_image,
    put_manifest,
    upload_blob,
)
from tests.support.registry import RunningRegistry, run_registry

pytestmark = pytest.mark.registry

EMPTY_CONFIG = b"{}"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture(scope="module")
def alice() -> tuple[bytes, bytes]:
    return generate_keypair("ecdsa-p256")


@pytest.fixture(scope="module")
def bob() -> tuple[bytes, bytes]:
    return generate_keypair("ed25519")


@pytest.fixture
async def client(registry: RunningRegistry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient.for_registry(registry.host) as opened:
        yield opened


def _get_manifest(registry: RunningRegistry, repository: str, reference: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _get_manifest_bytes(registry: RunningRegistry, repository: str, reference: str) -> bytes:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()  # type: ignore[no-any-return]


def _push(registry: RunningRegistry, repository: str = "team/app", tag: str = "v1") -> PushedImage:
    return push_image(registry.url, repository, tag, {"app.txt": f"{repository}:{tag}".encode()})


async def test_signed_image_verified(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    reference = f"{registry.host}/team/app"

    signature_digest = await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=reference
    )
    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    result = results["ci"]
    assert result.status is EvidenceStatus.VERIFIED, result.reasons
    assert len(result.verified) == 1
    assert result.verified[0].image_digest == image.digest
    assert result.verified[0].docker_reference == reference
    assert result.verified[0].key_id == key_id(load_public_key(alice[1]))
    assert "verified by authority 'ci'" in result.reasons[0]

    # The pushed artifact has cosign's shape.
    tag = signature_tag(image.digest)
    raw = _get_manifest_bytes(registry, "team/app", tag)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == signature_digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [SIMPLE_SIGNING_MEDIA_TYPE]
    assert SIGNATURE_ANNOTATION in manifest["layers"][0]["annotations"]


async def test_second_signature_appends_layer(
    registry: RunningRegistry,
    client: RegistryClient,
    alice: tuple[bytes, bytes],
    bob: tuple[bytes, bytes],
) -> None:
    image = _push(registry)
    reference = f"{registry.host}/team/app"
    await sign_image(client, "team/app", image.digest, alice[0], docker_reference=reference)
    await sign_image(client, "team/app", image.digest, bob[0], docker_reference=reference)
    _, carol_public = generate_keypair("ecdsa-p256")

    results = await check_authorities(
        client,
        "team/app",
        image.digest,
        [
            KeyAuthority("alice", alice[1]),
            KeyAuthority("bob", bob[1]),
            KeyAuthority("carol", carol_public),
        ],
    )

    manifest = _get_manifest(registry, "team/app", signature_tag(image.digest))
    assert len(manifest["layers"]) == 2  # type: ignore[arg-type]
    assert results["alice"].status is EvidenceStatus.VERIFIED
    assert results["bob"].status is EvidenceStatus.VERIFIED
    assert results["carol"].status is EvidenceStatus.INVALID
    assert (
        results["carol"]
        .reasons[0]
        .startswith(
            "2 signatures found, all failed: "
            "signature does not verify with key sha256:"
        )
    )
    assert list(results) == ["alice", "bob", "carol"]


async def test_unsigned_image_missing(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.MISSING
    assert results["ci"].verified == ()
    assert signature_tag(image.digest) in results["ci"].reasons[0]


async def test_stopped_registry_error(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )
    # The fixture started this process; stopping it here makes every request fail to connect.
    registry.process.terminate()
    registry.process.wait(timeout=10)

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.ERROR
    assert "could not read all signatures" in results["ci"].reasons[0]
    assert "could not reach registry" in results["ci"].reasons[0]


async def test_wrong_key_invalid(
    registry: RunningRegistry,
    client: RegistryClient,
    alice: tuple[bytes, bytes],
    bob: tuple[bytes, bytes],
) -> None:
    image = _push(registry)
    await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", bob[1])]
    )

    bob_id = key_id(load_public_key(bob[1]))
    assert results["ci"].status is EvidenceStatus.INVALID
    assert (
        results["ci"]
        .reasons[0]
        .startswith(
            "1 signature found, all failed: "
            f"signature does not verify with key sha256:{bob_id}"
        )
    )


async def test_copied_signature_for_other_digest(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    signed = _push(registry, tag="signed")
    unsigned = _push(registry, tag="unsigned")
    await sign_image(
        client, "team/app", signed.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )
    # Copy the genuine signature manifest of `signed` under the tag of `unsigned`.
    raw = _get_manifest_bytes(registry, "team/app", signature_tag(signed.digest))
    put_manifest(registry.url, "team/app", signature_tag(unsigned.digest), raw, OCI_MANIFEST)

    results = await check_authorities(
        client, "team/app", unsigned.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.INVALID
    assert "signature is for another image" in results["ci"].reasons[0]
    assert f"got {signed.digest}, expected {unsigned.digest}" in results["ci"].reasons[0]


async def test_separate_signature_repository(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    await sign_image(
        client,
        "team/app",
        image.digest,
        alice[0],
        docker_reference=f"{registry.host}/team/app",
        signature_repository="signatures/app",
    )

    results = await check_authorities(
        client,
        "team/app",
        image.digest,
        [
            KeyAuthority("elsewhere", alice[1], signature_repository="signatures/app"),
            KeyAuthority("same-repo", alice[1]),
        ],
    )

    assert results["elsewhere"].status is EvidenceStatus.VERIFIED
    assert results["same-repo"].status is EvidenceStatus.MISSING


async def test_signature_repository_other_registry(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes], tmp_path: Path
) -> None:
    image = _push(registry)
    with run_registry(tmp_path / "signature-registry") as other:
        async with RegistryClient.for_registry(other.host) as other_client:
            await sign_image(
                other_client,
                "sigs/app",
                image.digest,
                alice[0],
                docker_reference=f"{registry.host}/team/app",
            )
            requested: list[str] = []

            def clients(host: str) -> RegistryClient:
                requested.append(host)
                return other_client

            authority = KeyAuthority("ci", alice[1], signature_repository=f"{other.host}/sigs/app")
            results = await check_authorities(
                client, "team/app", image.digest, [authority], clients=clients
            )
            without_factory = await check_authorities(client, "team/app", image.digest, [authority])

    assert results["ci"].status is EvidenceStatus.VERIFIED
    assert requested == [other.host]
    assert without_factory["ci"].status is EvidenceStatus.ERROR
    assert "no client for other registries" in without_factory["ci"].reasons[0]


async def test_oversized_layer_invalid(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    payload = make_payload(
        f"{registry.host}/team/app", image.digest, {"pad": "x" * MAX_PAYLOAD_SIZE}
    )
    _push_signature_manifest(registry, image.digest, payload, sign_payload(alice[0], payload))

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.INVALID
    assert "is too large" in results["ci"].reasons[0]


async def test_missing_annotation_invalid(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    payload = make_payload(f"{registry.host}/team/app", image.digest)
    _push_signature_manifest(registry, image.digest, payload, None)

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.INVALID
    assert "has no dev.cosignproject.cosign/signature annotation" in results["ci"].reasons[0]


async def test_corrupted_layer_blob_error(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )
    manifest = _get_manifest(registry, "team/app", signature_tag(image.digest))
    # The registry now serves bytes that do not match the layer digest.
    _flip_stored_byte(registry, manifest["layers"][0]["digest"])  # type: ignore[index]

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.ERROR
    assert "digest mismatch" in results["ci"].reasons[0]


async def test_referrer_signature_verified(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    # distribution 2.8 has no referrers API, so the client reads the referrers tag schema.
    image = _push(registry)
    _push_referrer_signature(registry, image, alice[0])

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.VERIFIED, results["ci"].reasons
    assert results["ci"].verified[0].image_digest == image.digest


async def test_referrers_failure_keeps_legacy_result(
    registry: RunningRegistry,
    client: RegistryClient,
    alice: tuple[bytes, bytes],
    bob: tuple[bytes, bytes],
) -> None:
    image = _push(registry)
    await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )
    # A referrers index whose stored bytes no longer match its digest makes the referrers
    # read fail for "bob", whose key the .sig tag does not verify.
    _push_corrupted_referrers_index(registry, image)

    results = await check_authorities(
        client,
        "team/app",
        image.digest,
        [KeyAuthority("alice", alice[1]), KeyAuthority("bob", bob[1])],
    )

    assert results["alice"].status is EvidenceStatus.VERIFIED
    assert results["bob"].status is EvidenceStatus.ERROR
    assert "could not list referrers" in results["bob"].reasons[0]
    assert "digest mismatch" in results["bob"].reasons[0]


async def test_referrer_with_wrong_subject(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry, tag="listed")
    other = _push(registry, tag="other")
    # A genuine signature of `image` whose manifest names `other` as its subject.
    _push_referrer_signature(registry, image, alice[0], subject=other)

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.INVALID
    assert f"has the wrong subject: got {other.digest}" in results["ci"].reasons[0]


async def test_tampered_signature_manifest_error(
    registry: RunningRegistry, client: RegistryClient, alice: tuple[bytes, bytes]
) -> None:
    image = _push(registry)
    signature_digest = await sign_image(
        client, "team/app", image.digest, alice[0], docker_reference=f"{registry.host}/team/app"
    )
    _edit_stored_manifest(
        registry,
        signature_digest,
        b'"dev.cosignproject.cosign/signature":"',
        b'"dev.cosignproject.cosign/signaturx":"',
    )

    results = await check_authorities(
        client, "team/app", image.digest, [KeyAuthority("ci", alice[1])]
    )

    assert results["ci"].status is EvidenceStatus.ERROR
    assert "could not fetch signature manifest" in results["ci"].reasons[0]
    assert "digest mismatch" in results["ci"].reasons[0]


def _push_signature_manifest(
    registry: RunningRegistry, digest: str, payload: bytes, signature: bytes | None
) -> None:
    """Push a `.sig` manifest with one simple-signing layer built by hand."""
    layer_digest = upload_blob(registry.url, "team/app", payload)
    config_digest = upload_blob(registry.url, "team/app", EMPTY_CONFIG)
    annotations = {}
    if signature is not None:
        annotations[SIGNATURE_ANNOTATION] = base64.b64encode(signature).decode()
    layer: dict[str, object] = {
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "digest": layer_digest,
        "size": len(payload),
    }
    if annotations:
        layer["annotations"] = annotations
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(EMPTY_CONFIG),
            },
            "layers": [layer],
        }
    ).encode()
    put_manifest(registry.url, "team/app", signature_tag(digest), manifest, OCI_MANIFEST)


def _push_referrer_signature(
    registry: RunningRegistry,
    image: PushedImage,
    private_pem: bytes,
    *,
    subject: PushedImage | None = None,
) -> None:
    """Push cosign's OCI 1.1 signature form and the referrers tag schema index listing it."""
    payload = make_payload(f"{registry.host}/team/app", image.digest)
    signature = sign_payload(private_pem, payload)
    layer_digest = upload_blob(registry.url, "team/app", payload)
    config_digest = upload_blob(registry.url, "team/app", EMPTY_CONFIG)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": COSIGN_SIGNATURE_ARTIFACT_TYPE,
            "config": {"mediaType": OCI_EMPTY, "digest": config_digest, "size": 2},
            "layers": [
                {
                    "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                    "digest": layer_digest,
                    "size": len(payload),
                    "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
                }
            ],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": (subject or image).digest,
                "size": len((subject or image).manifest),
            },
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    put_manifest(registry.url, "team/app", manifest_digest, manifest, OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "artifactType": COSIGN_SIGNATURE_ARTIFACT_TYPE,
            }
        ],
    }
    referrers_tag = signature_tag(image.digest, "")
    put_manifest(registry.url, "team/app", referrers_tag, json.dumps(index).encode(), OCI_INDEX)


def _push_corrupted_referrers_index(registry: RunningRegistry, image: PushedImage) -> None:
    """Push a referrers tag schema index, then flip a byte of its stored blob."""
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "artifactType": COSIGN_SIGNATURE_ARTIFACT_TYPE,
                }
            ],
        }
    ).encode()
    index_digest = put_manifest(
        registry.url, "team/app", signature_tag(image.digest, ""), index, OCI_INDEX
    )
    _edit_stored_manifest(registry, index_digest, b'"artifactType": "a', b'"artifactType": "b')


def _flip_stored_byte(registry: RunningRegistry, digest: str) -> None:
    """Change the first byte of a blob in the registry's storage, keeping its size."""
    blob = _stored_blob(registry, digest)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0x01
    blob.write_bytes(bytes(data))


def _edit_stored_manifest(registry: RunningRegistry, digest: str, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) in a stored manifest, keeping it valid JSON.

    The registry parses a manifest before serving it, so a manifest that is no longer JSON
    gives HTTP 500 instead of bytes that fail the digest check.
    """
    assert len(old) == len(new)
    blob = _stored_blob(registry, digest)
    data = blob.read_bytes()
    assert old in data
    blob.write_bytes(data.replace(old, new, 1))


def _stored_blob(registry: RunningRegistry, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return registry.root / f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
