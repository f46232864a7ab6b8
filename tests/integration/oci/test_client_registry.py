"""RegistryClient against a real docker-registry: manifests, blobs, tags and referrers.

Debian's docker-registry 2.8 has no referrers API, so `referrers` takes the tag schema path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
import pytest

from regward.oci.client import ClientLimits, RegistryClient
from regward.oci.digest import compute_digest, referrers_tag
from regward.oci.errors import (
    InvalidDigestError,
    InvalidReferenceError,
    NotFoundError,
    OCIError,
    TooLargeError,
)
from regward.oci.mediatypes import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST
from tests.support.images import (
    PushedImage,
    push_image,
    push_index,
    put_manifest,
    upload_blob,
)
from tests.support.registry import RunningRegistry, run_registry

pytestmark = pytest.mark.registry

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX_TYPE = "application/spdx+json"
TAGS = ["a1", "b2", "c3", "d4", "e5"]


@dataclass(frozen=True)
class Content:
    """What the module's registry holds."""

    registry: RunningRegistry
    app: PushedImage
    other: PushedImage
    index_digest: str
    index_raw: bytes
    referrers: dict[str, str]
    """Artifact manifest digest → the artifact type the client should report."""


def push_artifact(
    url: str,
    repository: str,
    subject: PushedImage,
    *,
    artifact_type: str | None,
    config_type: str,
    layer_type: str,
    payload: bytes,
) -> tuple[str, bytes]:
    config = b"{}" if config_type == OCI_EMPTY else b'{"kind": "config"}'
    config_digest = upload_blob(url, repository, config)
    layer_digest = upload_blob(url, repository, payload)
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": len(payload)}],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": subject.digest,
            "size": len(subject.manifest),
        },
    }
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    raw = json.dumps(body).encode()
    digest = put_manifest(url, repository, compute_digest(raw), raw, OCI_MANIFEST)
    return digest, raw


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Content]:
    with run_registry(tmp_path_factory.mktemp("registry")) as registry:
        url = registry.url
        app = push_image(url, "test/app", "v1", {"app.txt": b"app"})
        other = push_image(url, "test/app", None, {"other.txt": b"other"}, architecture="arm64")
        index_digest, index_raw = push_index(url, "test/app", "multi", [app, other])
        # The same files give the same manifest, so its blobs exist in test/tags too.
        push_image(url, "test/tags", TAGS[0], {"app.txt": b"app"})
        for tag in TAGS[1:]:
            put_manifest(url, "test/tags", tag, app.manifest, OCI_MANIFEST)

        # Three referrers of `app`: the index entry of the first has artifactType, the other
        # two have none, as go-containerregistry before v0.22.1 wrote them.
        bundle, bundle_raw = push_artifact(
            url,
            "test/app",
            app,
            artifact_type=BUNDLE_TYPE,
            config_type=OCI_EMPTY,
            layer_type=BUNDLE_TYPE,
            payload=b'{"bundle": 1}',
        )
        signature, signature_raw = push_artifact(
            url,
            "test/app",
            app,
            artifact_type=None,
            config_type=COSIGN_SIG_TYPE,
            layer_type="application/vnd.dev.cosign.simplesigning.v1+json",
            payload=b"sig",
        )
        sbom, sbom_raw = push_artifact(
            url,
            "test/app",
            app,
            artifact_type=SPDX_TYPE,
            config_type=OCI_EMPTY,
            layer_type=SPDX_TYPE,
            payload=b'{"spdxVersion": "SPDX-2.3"}',
        )
        entries = [
            {
                "mediaType": OCI_MANIFEST,
                "digest": bundle,
                "size": len(bundle_raw),
                "artifactType": BUNDLE_TYPE,
            },
            {"mediaType": OCI_MANIFEST, "digest": signature, "size": len(signature_raw)},
            {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(sbom_raw)},
        ]
        referrers_index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        put_manifest(url, "test/app", referrers_tag(app.digest), referrers_index, OCI_INDEX)

        # Under `other`'s referrers tag sits a plain image, not an index.
        put_manifest(url, "test/app", referrers_tag(other.digest), app.manifest, OCI_MANIFEST)

        yield Content(
            registry,
            app,
            other,
            index_digest,
            index_raw,
            {bundle: BUNDLE_TYPE, signature: COSIGN_SIG_TYPE, sbom: SPDX_TYPE},
        )


@pytest.fixture
async def client(content: Content) -> AsyncIterator[RegistryClient]:
    async with RegistryClient.for_registry(content.registry.host) as registry_client:
        yield registry_client


async def test_get_manifest_by_tag(client: RegistryClient, content: Content) -> None:
    fetched = await client.get_manifest("test/app", "v1")
    assert fetched.digest == content.app.digest
    assert fetched.raw == content.app.manifest
    assert fetched.media_type == OCI_MANIFEST
    assert fetched.manifest.config is not None
    assert fetched.manifest.config.digest == content.app.config_digest


async def test_get_manifest_by_digest(client: RegistryClient, content: Content) -> None:
    fetched = await client.get_manifest("test/app", content.other.digest)
    assert fetched.digest == content.other.digest
    assert fetched.raw == content.other.manifest


async def test_get_index_by_tag(client: RegistryClient, content: Content) -> None:
    fetched = await client.get_manifest("test/app", "multi")
    assert fetched.manifest.is_index
    assert fetched.digest == content.index_digest
    assert [d.digest for d in fetched.manifest.manifests] == [
        content.app.digest,
        content.other.digest,
    ]


async def test_get_manifest_unknown_tag(client: RegistryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_manifest("test/app", "missing")
    assert caught.value.status_code == 404
    assert caught.value.code == "MANIFEST_UNKNOWN"
    assert "test/app:missing not found" in str(caught.value)


async def test_get_manifest_unknown_repository(client: RegistryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_manifest("test/none", "v1")
    # distribution 2.8 reports an unknown repository as an unknown manifest here.
    assert caught.value.code == "MANIFEST_UNKNOWN"


async def test_get_manifest_rejects_bad_arguments(client: RegistryClient) -> None:
    with pytest.raises(InvalidReferenceError):
        await client.get_manifest("test/../app", "v1")
    with pytest.raises(InvalidReferenceError):
        await client.get_manifest("test/app", "v1?x=1")
    with pytest.raises(InvalidDigestError):
        await client.get_manifest("test/app", "sha256:abc")


async def test_get_manifest_size_limit(content: Content) -> None:
    limits = ClientLimits(max_manifest_size=len(content.app.manifest) - 1)
    async with RegistryClient.for_registry(content.registry.host, limits=limits) as client:
        with pytest.raises(TooLargeError) as caught:
            await client.get_manifest("test/app", "v1")
    assert caught.value.limit == len(content.app.manifest) - 1
    assert caught.value.size == len(content.app.manifest)


async def test_head_manifest(client: RegistryClient, content: Content) -> None:
    descriptor = await client.head_manifest("test/app", "v1")
    assert descriptor is not None
    assert descriptor.digest == content.app.digest
    assert descriptor.size == len(content.app.manifest)
    assert descriptor.media_type == OCI_MANIFEST
    by_digest = await client.head_manifest("test/app", content.index_digest)
    assert by_digest is not None
    assert by_digest.media_type == OCI_INDEX


async def test_head_manifest_missing_is_none(client: RegistryClient) -> None:
    assert await client.head_manifest("test/app", "missing") is None
    assert await client.head_manifest("test/app", "sha256:" + "0" * 64) is None


async def test_get_blob_verified(client: RegistryClient, content: Content) -> None:
    config = await client.get_blob("test/app", content.app.config_digest)
    assert compute_digest(config) == content.app.config_digest
    assert json.loads(config)["architecture"] == "amd64"


async def test_get_blob_missing(client: RegistryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_blob("test/app", "sha256:" + "0" * 64)
    assert caught.value.code == "BLOB_UNKNOWN"


async def test_get_blob_size_limit(client: RegistryClient, content: Content) -> None:
    with pytest.raises(TooLargeError, match="the maximum is 10"):
        await client.get_blob("test/app", content.app.layer_digests[0], max_size=10)


async def test_open_blob_streams_bytes(client: RegistryClient, content: Content) -> None:
    digest = content.app.layer_digests[0]
    response = await client.open_blob("test/app", digest)
    try:
        assert response.status == 200
        body = b"".join([chunk async for chunk in response.content.iter_chunked(1024)])
    finally:
        response.release()
    assert compute_digest(body) == digest


async def test_open_blob_range(client: RegistryClient, content: Content) -> None:
    response = await client.open_blob(
        "test/app", content.app.config_digest, headers={"Range": "bytes=0-3"}
    )
    try:
        assert response.status == 206
        assert await response.read() == b'{"ar'
    finally:
        response.release()


async def test_open_blob_missing(client: RegistryClient) -> None:
    with pytest.raises(NotFoundError):
        await client.open_blob("test/app", "sha256:" + "0" * 64)


async def test_list_tags_single_page(client: RegistryClient) -> None:
    # distribution 2.8 lists tags in storage order, not sorted.
    assert sorted(await client.list_tags("test/tags")) == TAGS


async def test_list_tags_sends_page_size(content: Content) -> None:
    # distribution 2.8 ignores `n` and sends every tag in one page without a Link header;
    # Link pagination is tested against a scripted server in test_client_hostile.py.
    requests: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        requests.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = RegistryClient.for_registry(content.registry.host, session=session)
        tags = await client.list_tags("test/tags", page_size=2)
    assert sorted(tags) == TAGS
    assert requests == [f"{content.registry.url}/v2/test/tags/tags/list?n=2"]


async def test_list_tags_limit(content: Content) -> None:
    limits = ClientLimits(max_tags=3)
    async with RegistryClient.for_registry(content.registry.host, limits=limits) as client:
        with pytest.raises(TooLargeError, match="more than 3 tags"):
            await client.list_tags("test/tags")


async def test_list_tags_unknown_repository(client: RegistryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.list_tags("test/none")
    assert caught.value.code == "NAME_UNKNOWN"


async def test_referrers_tag_schema_fallback(client: RegistryClient, content: Content) -> None:
    found = await client.referrers("test/app", content.app.digest)
    assert {d.digest: d.artifact_type for d in found} == content.referrers
    assert all(d.media_type == OCI_MANIFEST for d in found)


async def test_referrers_filter_by_artifact_type(client: RegistryClient, content: Content) -> None:
    sboms = await client.referrers("test/app", content.app.digest, artifact_type=SPDX_TYPE)
    assert [d.artifact_type for d in sboms] == [SPDX_TYPE]
    signatures = await client.referrers(
        "test/app", content.app.digest, artifact_type=COSIGN_SIG_TYPE
    )
    assert len(signatures) == 1
    assert content.referrers[signatures[0].digest] == COSIGN_SIG_TYPE


async def test_referrers_none_without_tag(client: RegistryClient, content: Content) -> None:
    assert await client.referrers("test/app", content.index_digest) == []


async def test_referrers_tag_holding_image_means_none(
    client: RegistryClient, content: Content
) -> None:
    assert await client.referrers("test/app", content.other.digest) == []


async def test_referrers_limit(content: Content) -> None:
    limits = ClientLimits(max_referrers=2)
    async with RegistryClient.for_registry(content.registry.host, limits=limits) as client:
        with pytest.raises(TooLargeError, match="more than 2 referrers"):
            await client.referrers("test/app", content.app.digest)


async def test_request_pass_through(client: RegistryClient, content: Content) -> None:
    response = await client.request(
        "GET",
        "/v2/test/app/manifests/v1",
        headers={"Accept": OCI_MANIFEST, "Authorization": "Bearer client-token"},
    )
    try:
        assert response.status == 200
        assert response.headers["Docker-Content-Digest"] == content.app.digest
        assert await response.read() == content.app.manifest
        assert "Authorization" not in response.request_info.headers
    finally:
        response.release()


async def test_request_returns_error_statuses(client: RegistryClient) -> None:
    response = await client.request("GET", "/v2/test/app/manifests/missing")
    try:
        assert response.status == 404
    finally:
        response.release()


async def test_request_push_manifest(client: RegistryClient, content: Content) -> None:
    response = await client.request(
        "PUT",
        "/v2/test/app/manifests/pushed",
        headers={"Content-Type": OCI_MANIFEST},
        data=content.app.manifest,
    )
    try:
        assert response.status == 201
    finally:
        response.release()
    fetched = await client.get_manifest("test/app", "pushed")
    assert fetched.digest == content.app.digest


async def test_request_streamed_body(client: RegistryClient, content: Content) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield content.app.manifest[:10]
        yield content.app.manifest[10:]

    response = await client.request(
        "PUT",
        "/v2/test/app/manifests/streamed",
        headers={"Content-Type": OCI_MANIFEST},
        data=body(),
    )
    try:
        assert response.status == 201
    finally:
        response.release()
    descriptor = await client.head_manifest("test/app", "streamed")
    assert descriptor is not None
    assert descriptor.digest == content.app.digest


async def test_closed_client_raises(content: Content) -> None:
    client = RegistryClient.for_registry(content.registry.host)
    await client.get_manifest("test/app", "v1")
    await client.close()
    with pytest.raises(OCIError, match="is closed"):
        await client.get_manifest("test/app", "v1")
