"""Promotion against real docker-registry processes: mounts, streaming copies, accessories."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from regward.oci.client import RegistryClient
from regward.oci.digest import referrers_tag
from regward.oci.reference import parse_reference
from regward.policy.load import load_policy
from regward.promotion import (
    BlobTransfer,
    CheckOutcome,
    CopyError,
    PolicyCheck,
    Promoter,
    PromotionError,
    PromotionResult,
    PromotionSubject,
)
from regward.signatures.cosign import signature_tag
from regward.signatures.sign import generate_keypair
from regward.store.db import AuditRecord
from tests.integration.gate.conftest import Keys
from tests.integration.oci.servers import serve
from tests.integration.promotion.conftest import sign_on
from tests.support.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    push_image,
    push_index,
    put_manifest,
    sha256,
    upload_blob,
)
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

ARTIFACT_TYPE = "application/vnd.example.sbom+json"
EMPTY_CONFIG = b"{}"


def fetch_manifest(url: str, repository: str, reference: str) -> tuple[str, bytes] | None:
    """Return (digest, bytes) of a manifest, or None on 404."""
    request = urllib.request.Request(
        f"{url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return sha256(body), body


def blob_exists(url: str, repository: str, digest: str) -> bool:
    request = urllib.request.Request(f"{url}/v2/{repository}/blobs/{digest}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def push_referrer(url: str, repository: str, subject: str, subject_size: int, text: bytes) -> str:
    """Push an artifact manifest whose subject is `subject`, and add it to the fallback index."""
    upload_blob(url, repository, EMPTY_CONFIG)
    layer = upload_blob(url, repository, text)
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": sha256(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": len(text)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"org.example.kind": "sbom"},
    }
    manifest = json.dumps(body, sort_keys=True).encode()
    digest = put_manifest(url, repository, sha256(manifest), manifest, OCI_MANIFEST)
    tag = referrers_tag(subject)
    existing = fetch_manifest(url, repository, tag)
    entries = json.loads(existing[1])["manifests"] if existing else []
    entries.append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": ARTIFACT_TYPE,
            "annotations": {"org.example.kind": "sbom"},
        }
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    put_manifest(url, repository, tag, index, OCI_INDEX)
    return digest


class AllowAll:
    """A check that allows everything, for copy tests that are not about the policy."""

    async def check(self, subject: PromotionSubject) -> CheckOutcome:
        return CheckOutcome(allowed=True, rule="test")


def promote(
    source_registry: RunningRegistry,
    source: str,
    destination_registry: RunningRegistry,
    destination: str,
    promoter: Promoter | None = None,
) -> PromotionResult:
    promoter = promoter or Promoter(AllowAll())

    async def run() -> PromotionResult:
        source_ref = parse_reference(f"{source_registry.host}/{source}")
        destination_ref = parse_reference(f"{destination_registry.host}/{destination}")
        async with RegistryClient(source_registry.url) as source_client:
            if destination_registry is source_registry:
                return await promoter.promote(
                    source_client, source_ref, source_client, destination_ref
                )
            async with RegistryClient(destination_registry.url) as destination_client:
                return await promoter.promote(
                    source_client, source_ref, destination_client, destination_ref
                )

    return asyncio.run(run())


def test_same_registry_mounts_blobs(registry: RunningRegistry, keys: Keys) -> None:
    image = push_image(registry.url, "dev/app", "v1", {"app.txt": b"clean"})
    signature = sign_on(registry, "dev/app", image.digest, keys.private_pem)

    result = promote(registry, "dev/app:v1", registry, "prod/app:v1")

    assert result.promoted
    assert result.digest == image.digest
    assert result.report is not None
    assert result.report.blobs.get(BlobTransfer.MOUNTED, 0) >= 2
    assert result.report.bytes_streamed == 0
    assert fetch_manifest(registry.url, "prod/app", "v1") == (image.digest, image.manifest)
    copied_signature = fetch_manifest(registry.url, "prod/app", signature_tag(image.digest))
    assert copied_signature is not None
    assert copied_signature[0] == signature


def test_between_registries_streams_blobs(
    registry: RunningRegistry, second_registry: RunningRegistry, keys: Keys
) -> None:
    layer_text = b"x" * (3 * 1024 * 1024 + 17)
    image = push_image(registry.url, "dev/app", "v1", {"big.bin": layer_text})
    signature = sign_on(registry, "dev/app", image.digest, keys.private_pem)

    result = promote(registry, "dev/app:v1", second_registry, "prod/app:stable")

    assert result.promoted
    assert result.report is not None
    assert result.report.blobs.get(BlobTransfer.STREAMED, 0) >= 2
    assert result.report.bytes_streamed > 0
    assert fetch_manifest(second_registry.url, "prod/app", "stable") == (
        image.digest,
        image.manifest,
    )
    for blob in (image.config_digest, *image.layer_digests):
        assert blob_exists(second_registry.url, "prod/app", blob)
    copied_signature = fetch_manifest(second_registry.url, "prod/app", signature_tag(image.digest))
    assert copied_signature is not None
    assert copied_signature[0] == signature


def test_destination_without_tag_gets_digest_only(registry: RunningRegistry) -> None:
    image = push_image(registry.url, "dev/app", "v1")

    result = promote(registry, "dev/app:v1", registry, "prod/app")

    assert result.promoted
    assert result.tag is None
    assert fetch_manifest(registry.url, "prod/app", image.digest) is not None
    assert fetch_manifest(registry.url, "prod/app", "latest") is None


def test_index_copies_every_child(
    registry: RunningRegistry, second_registry: RunningRegistry, keys: Keys
) -> None:
    children = [
        push_image(registry.url, "dev/multi", None, {"arch": name.encode()}, architecture=name)
        for name in ("amd64", "arm64")
    ]
    index_digest, index = push_index(registry.url, "dev/multi", "v2", children)
    child_signature = sign_on(registry, "dev/multi", children[1].digest, keys.private_pem)

    result = promote(registry, "dev/multi:v2", second_registry, "prod/multi:v2")

    assert result.promoted
    assert fetch_manifest(second_registry.url, "prod/multi", "v2") == (index_digest, index)
    for child in children:
        assert fetch_manifest(second_registry.url, "prod/multi", child.digest) is not None
    copied = fetch_manifest(second_registry.url, "prod/multi", signature_tag(children[1].digest))
    assert copied is not None
    assert copied[0] == child_signature


def test_referrers_fallback_index_is_merged(
    registry: RunningRegistry, second_registry: RunningRegistry
) -> None:
    image = push_image(registry.url, "dev/app", "v1")
    referrer = push_referrer(registry.url, "dev/app", image.digest, len(image.manifest), b"sbom")
    # The destination already lists a referrer of its own for the same subject.
    own = push_referrer(second_registry.url, "prod/app", image.digest, len(image.manifest), b"own")

    result = promote(registry, "dev/app:v1", second_registry, "prod/app:v1")

    assert result.promoted
    assert result.report is not None
    assert result.report.referrers_fallback_updated == (image.digest,)
    assert fetch_manifest(second_registry.url, "prod/app", referrer) is not None
    fallback = fetch_manifest(second_registry.url, "prod/app", referrers_tag(image.digest))
    assert fallback is not None
    entries = json.loads(fallback[1])["manifests"]
    assert [entry["digest"] for entry in entries] == [own, referrer]
    assert entries[1]["artifactType"] == ARTIFACT_TYPE
    assert entries[1]["annotations"] == {"org.example.kind": "sbom"}


def test_signature_tags_are_merged(
    registry: RunningRegistry, second_registry: RunningRegistry, keys: Keys
) -> None:
    image = push_image(registry.url, "dev/app", "v1")
    sign_on(registry, "dev/app", image.digest, keys.private_pem)
    promote(registry, "dev/app:v1", second_registry, "prod/app")
    # Both sides gain a signature the other lacks: another key at the destination, a second
    # signature by the same key at the source (ECDSA signatures differ on every run).
    other_key, _ = generate_keypair()
    sign_on(second_registry, "prod/app", image.digest, other_key)
    sign_on(registry, "dev/app", image.digest, keys.private_pem)
    tag = signature_tag(image.digest)
    before = fetch_manifest(second_registry.url, "prod/app", tag)
    source = fetch_manifest(registry.url, "dev/app", tag)
    assert before is not None and source is not None

    result = promote(registry, "dev/app:v1", second_registry, "prod/app:v1")

    assert result.report is not None
    assert [item.tag for item in result.report.accessories if item.merged] == [tag]
    after = fetch_manifest(second_registry.url, "prod/app", tag)
    assert after is not None
    before_layers = json.loads(before[1])["layers"]
    source_layers = json.loads(source[1])["layers"]
    expected = before_layers + [layer for layer in source_layers if layer not in before_layers]
    assert json.loads(after[1])["layers"] == expected
    assert len(expected) == 3
    for layer in expected:
        assert blob_exists(second_registry.url, "prod/app", layer["digest"])


def test_check_refusal_copies_nothing(registry: RunningRegistry, policy_file: Path) -> None:
    push_image(registry.url, "dev/app", "v1")
    records: list[AuditRecord] = []
    promoter = Promoter(PolicyCheck(load_policy(policy_file)), audit=records.append)

    result = promote(registry, "dev/app:v1", registry, "prod/app:v1", promoter)

    assert not result.promoted
    assert result.check.rule == "production"
    assert any("no signature verified by authority 'ci'" in r for r in result.check.reasons)
    assert result.report is None
    assert fetch_manifest(registry.url, "prod/app", "v1") is None
    assert [(r.action, r.decision, r.repository) for r in records] == [("push", "deny", "prod/app")]


def test_signed_image_passes_policy(
    registry: RunningRegistry, policy_file: Path, keys: Keys
) -> None:
    image = push_image(registry.url, "dev/app", "v1")
    sign_on(registry, "dev/app", image.digest, keys.private_pem)
    records: list[AuditRecord] = []
    promoter = Promoter(PolicyCheck(load_policy(policy_file)), audit=records.append)

    result = promote(registry, "dev/app:v1", registry, "prod/app:v1", promoter)

    assert result.promoted
    assert [(r.decision, r.reference, r.digest) for r in records] == [("allow", "v1", image.digest)]
    assert records[0].reasons[0] == f"promoted from {registry.host}/dev/app@{image.digest}"
    assert records[0].time <= datetime.now(UTC)


def test_destination_digest_must_match(registry: RunningRegistry) -> None:
    push_image(registry.url, "dev/app", "v1")
    other = "sha256:" + hashlib.sha256(b"other").hexdigest()

    with pytest.raises(PromotionError, match="names digest"):
        promote(registry, "dev/app:v1", registry, f"prod/app@{other}")


def test_corrupt_source_blob_aborts(second_registry: RunningRegistry) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    layer = b"the real layer bytes"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    blobs = {sha256(config): config, sha256(layer): b"the fake layer bytes"}

    async def get_manifest(request: web.Request) -> web.Response:
        return web.Response(body=manifest, content_type=OCI_MANIFEST)

    async def get_blob(request: web.Request) -> web.Response:
        return web.Response(body=blobs[request.match_info["digest"]])

    app = web.Application()
    app.router.add_get("/v2/dev/app/manifests/{reference}", get_manifest)
    app.router.add_get("/v2/dev/app/blobs/{digest}", get_blob)

    async def run() -> None:
        async with (
            serve(app) as url,
            RegistryClient(url) as source,
            RegistryClient(second_registry.url) as destination,
        ):
            source_ref = parse_reference(f"{url.removeprefix('http://')}/dev/app:v1")
            destination_ref = parse_reference(f"{second_registry.host}/prod/app:v1")
            await Promoter(AllowAll()).promote(source, source_ref, destination, destination_ref)

    with pytest.raises(CopyError, match="digest mismatch"):
        asyncio.run(run())
    assert not blob_exists(second_registry.url, "prod/app", sha256(layer))
    assert fetch_manifest(second_registry.url, "prod/app", "v1") is None
