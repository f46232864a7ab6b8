"""Keyless signatures, bundles and attestations read from a real docker-registry on loopback.

distribution 2.8 has no referrers API, so bundles are found through the `sha256-<hex>`
referrers tag schema index, with and without `artifactType` on its entries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.signatures import (
    AttestationRequirement,
    EvidenceStatus,
    KeyAuthority,
    KeylessAuthority,
    TrustRoot,
    check_attestations,
    check_authorities,
)
from regward.signatures.dsse import COSIGN_SIGN_PREDICATE_TYPE
from regward.signatures.predicates import (
    COSIGN_VULN,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    SPDX_DOCUMENT,
    read_provenance,
    read_scan_finished,
)
from tests.support.images import PushedImage, push_image
from tests.support.registry import RunningRegistry
from tests.support.sigstore import (
    DSSE_LAYER,
    GITHUB_ISSUER,
    SIMPLE_SIGNING,
    Identity,
    PrivateSigstore,
    ec_private_pem,
    key_attestation_layer,
    keyless_attestation_layer,
    keyless_bundle,
    keyless_signature_layer,
    provenance_v02,
    provenance_v1,
    push_buildkit_index,
    push_bundle_referrer,
    push_layers,
    spdx_document,
    statement,
    tag_for,
    vuln_predicate,
)

pytestmark = pytest.mark.registry

REPOSITORY = "team/app"
WORKFLOW = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main"
IDENTITY = Identity(WORKFLOW)


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


@pytest.fixture(scope="module")
def root(sigstore: PrivateSigstore, tmp_path_factory: pytest.TempPathFactory) -> TrustRoot:
    path = tmp_path_factory.mktemp("root") / "trusted_root.json"
    return TrustRoot.load(sigstore.write_trusted_root(path))


@pytest.fixture
async def client(registry: RunningRegistry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient.for_registry(registry.host) as opened:
        yield opened


def gha(
    root: TrustRoot, name: str = "gha", subject_regexp: str = r"https://github\.com/acme/.+"
) -> KeylessAuthority:
    return KeylessAuthority(name, root, issuer=GITHUB_ISSUER, subject_regexp=subject_regexp)


def image(registry: RunningRegistry, tag: str = "v1") -> PushedImage:
    return push_image(registry.url, REPOSITORY, tag, {"app.txt": tag.encode()})


# -- signatures ---------------------------------------------------------------------------


async def test_keyless_sig_tag_verified(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    layer = keyless_signature_layer(
        sigstore, IDENTITY, f"{registry.host}/{REPOSITORY}", pushed.digest
    )
    push_layers(registry.url, REPOSITORY, tag_for(pushed.digest, "sig"), [layer], SIMPLE_SIGNING)

    results = await check_authorities(
        client,
        REPOSITORY,
        pushed.digest,
        [gha(root), gha(root, "other", r"https://github\.com/other/.+")],
    )

    assert results["gha"].status is EvidenceStatus.VERIFIED, results["gha"].reasons
    assert WORKFLOW in results["gha"].reasons[0]
    assert results["other"].status is EvidenceStatus.INVALID
    assert "subject does not match" in results["other"].reasons[0]


async def test_keyless_and_key_authorities_together(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    _, public = ec_private_pem()

    results = await check_authorities(
        client, REPOSITORY, pushed.digest, [gha(root), KeyAuthority("ci", public)]
    )

    assert results["gha"].status is EvidenceStatus.MISSING
    assert results["ci"].status is EvidenceStatus.MISSING


@pytest.mark.parametrize("index_artifact_type", [True, False], ids=["typed", "untyped-index"])
async def test_signature_bundle_referrer_verified(
    registry: RunningRegistry,
    client: RegistryClient,
    sigstore: PrivateSigstore,
    root: TrustRoot,
    index_artifact_type: bool,
) -> None:
    pushed = image(registry)
    bundle = keyless_bundle(
        sigstore, IDENTITY, statement(pushed.digest, COSIGN_SIGN_PREDICATE_TYPE)
    )
    push_bundle_referrer(
        registry.url,
        REPOSITORY,
        pushed,
        bundle,
        predicate_type=COSIGN_SIGN_PREDICATE_TYPE,
        index_artifact_type=index_artifact_type,
    )

    results = await check_authorities(client, REPOSITORY, pushed.digest, [gha(root)])

    assert results["gha"].status is EvidenceStatus.VERIFIED, results["gha"].reasons
    assert results["gha"].verified[0].subject == WORKFLOW


async def test_attestation_bundle_is_not_a_signature(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    bundle = keyless_bundle(sigstore, IDENTITY, statement(pushed.digest, SPDX_DOCUMENT))
    push_bundle_referrer(registry.url, REPOSITORY, pushed, bundle, predicate_type=SPDX_DOCUMENT)

    results = await check_authorities(client, REPOSITORY, pushed.digest, [gha(root)])

    assert results["gha"].status is EvidenceStatus.MISSING


async def test_signature_bundle_with_wrong_manifest_subject_ignored(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    other = image(registry, "other")
    bundle = keyless_bundle(
        sigstore, IDENTITY, statement(pushed.digest, COSIGN_SIGN_PREDICATE_TYPE)
    )
    # Listed for `pushed`, but the manifest names `other` as its subject.
    push_bundle_referrer(
        registry.url,
        REPOSITORY,
        pushed,
        bundle,
        predicate_type=COSIGN_SIGN_PREDICATE_TYPE,
        subject_digest=other.digest,
    )

    results = await check_authorities(client, REPOSITORY, pushed.digest, [gha(root)])

    assert results["gha"].status is not EvidenceStatus.VERIFIED


# -- attestations -------------------------------------------------------------------------


async def test_attestations_from_att_tag_and_bundles(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    ci_private, ci_public = ec_private_pem()
    provenance = statement(
        pushed.digest,
        SLSA_PROVENANCE_V1,
        provenance_v1("https://github.com/actions/runner", "https://github.com/acme/app"),
    )
    scan = statement(
        pushed.digest,
        "cosign.sigstore.dev/attestation/vuln/v1",
        vuln_predicate(datetime.now(UTC) - timedelta(hours=1)),
        version="v0.1",
        name=f"{registry.host}/{REPOSITORY}",
    )
    push_layers(
        registry.url,
        REPOSITORY,
        tag_for(pushed.digest, "att"),
        [
            keyless_attestation_layer(sigstore, IDENTITY, provenance, SLSA_PROVENANCE_V1),
            key_attestation_layer(ci_private, scan, "cosign.sigstore.dev/attestation/vuln/v1"),
        ],
        DSSE_LAYER,
    )
    sbom = keyless_bundle(
        sigstore, IDENTITY, statement(pushed.digest, SPDX_DOCUMENT, spdx_document())
    )
    push_bundle_referrer(registry.url, REPOSITORY, pushed, sbom, predicate_type=SPDX_DOCUMENT)

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [
            AttestationRequirement("provenance", SLSA_PROVENANCE_V1, (gha(root),)),
            AttestationRequirement("scan", COSIGN_VULN, (KeyAuthority("ci", ci_public),)),
            AttestationRequirement("sbom", SPDX_DOCUMENT, (gha(root),)),
            AttestationRequirement("cyclonedx", "https://cyclonedx.org/bom", (gha(root),)),
        ],
    )

    assert results["provenance"].status is EvidenceStatus.VERIFIED, results["provenance"].reasons
    provenance_read = read_provenance(results["provenance"].statements[0].statement)
    assert provenance_read.builder_id == "https://github.com/actions/runner"
    assert "https://github.com/acme/app" in provenance_read.source_repositories
    assert results["scan"].status is EvidenceStatus.VERIFIED, results["scan"].reasons
    assert read_scan_finished(results["scan"].statements[0].statement) < datetime.now(UTC)
    assert results["sbom"].status is EvidenceStatus.VERIFIED, results["sbom"].reasons
    assert results["sbom"].statements[0].source == "sigstore-bundle"
    assert results["cyclonedx"].status is EvidenceStatus.MISSING


async def test_attestation_by_untrusted_key_invalid(
    registry: RunningRegistry, client: RegistryClient
) -> None:
    pushed = image(registry)
    attacker, _ = ec_private_pem()
    _, trusted = ec_private_pem()
    push_layers(
        registry.url,
        REPOSITORY,
        tag_for(pushed.digest, "att"),
        [key_attestation_layer(attacker, statement(pushed.digest, SPDX_DOCUMENT), SPDX_DOCUMENT)],
        DSSE_LAYER,
    )

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [AttestationRequirement("sbom", SPDX_DOCUMENT, (KeyAuthority("ci", trusted),))],
    )

    assert results["sbom"].status is EvidenceStatus.INVALID
    assert "does not verify" in results["sbom"].reasons[0]


async def test_bundle_about_other_digest_invalid(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    other = image(registry, "other")
    # A genuine attestation of `other`, attached to `pushed`.
    bundle = keyless_bundle(sigstore, IDENTITY, statement(other.digest, SPDX_DOCUMENT))
    push_bundle_referrer(registry.url, REPOSITORY, pushed, bundle, predicate_type=SPDX_DOCUMENT)

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [AttestationRequirement("sbom", SPDX_DOCUMENT, (gha(root),))],
    )

    assert results["sbom"].status is EvidenceStatus.INVALID
    assert "another artifact" in results["sbom"].reasons[0]


async def test_unannotated_bundle_by_stranger_invalid(
    registry: RunningRegistry, client: RegistryClient, sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    pushed = image(registry)
    stranger = Identity("https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main")
    bundle = keyless_bundle(sigstore, stranger, statement(pushed.digest, SPDX_DOCUMENT))
    push_bundle_referrer(
        registry.url, REPOSITORY, pushed, bundle, predicate_type=SPDX_DOCUMENT, annotate=False
    )

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [AttestationRequirement("sbom", SPDX_DOCUMENT, (gha(root),))],
    )

    assert results["sbom"].status is EvidenceStatus.INVALID
    assert "subject does not match" in results["sbom"].reasons[0]


async def test_count_requires_distinct_authorities(
    registry: RunningRegistry, client: RegistryClient
) -> None:
    pushed = image(registry)
    first_private, first_public = ec_private_pem()
    _, second_public = ec_private_pem()
    push_layers(
        registry.url,
        REPOSITORY,
        tag_for(pushed.digest, "att"),
        [
            key_attestation_layer(
                first_private, statement(pushed.digest, SPDX_DOCUMENT), SPDX_DOCUMENT
            )
        ],
        DSSE_LAYER,
    )
    authorities = (KeyAuthority("first", first_public), KeyAuthority("second", second_public))

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [
            AttestationRequirement("one", SPDX_DOCUMENT, authorities),
            AttestationRequirement("two", SPDX_DOCUMENT, authorities, count=2),
        ],
    )

    assert results["one"].status is EvidenceStatus.VERIFIED
    assert results["two"].status is EvidenceStatus.INVALID
    assert "1 authority (first), 2 required" in results["two"].reasons[0]


async def test_buildkit_statements_need_allow_unsigned(
    registry: RunningRegistry, client: RegistryClient
) -> None:
    child = image(registry, "amd64")
    provenance = statement(
        child.digest,
        SLSA_PROVENANCE_V02,
        provenance_v02("https://github.com/docker/buildx", "https://github.com/acme/app"),
    )
    index_digest, index_bytes = push_buildkit_index(
        registry.url, REPOSITORY, "multi", child, [(SLSA_PROVENANCE_V02, provenance)]
    )
    fetched = await client.get_manifest(REPOSITORY, index_digest)
    _, key = ec_private_pem()

    results = await check_attestations(
        client,
        REPOSITORY,
        index_digest,
        [
            AttestationRequirement("strict", SLSA_PROVENANCE_V02, (KeyAuthority("ci", key),)),
            AttestationRequirement("lenient", SLSA_PROVENANCE_V02, (), allow_unsigned=True),
        ],
        index=fetched.manifest,
    )

    assert results["lenient"].status is EvidenceStatus.VERIFIED, results["lenient"].reasons
    assert not results["lenient"].statements[0].signed
    assert results["strict"].status is EvidenceStatus.INVALID
    assert "allowUnsigned is not set" in results["strict"].reasons[0]
    assert json.loads(index_bytes)["manifests"][1]["annotations"]["vnd.docker.reference.type"] == (
        "attestation-manifest"
    )


async def test_no_attestations_missing(registry: RunningRegistry, client: RegistryClient) -> None:
    pushed = image(registry)
    _, key = ec_private_pem()

    results = await check_attestations(
        client,
        REPOSITORY,
        pushed.digest,
        [AttestationRequirement("sbom", SPDX_DOCUMENT, (KeyAuthority("ci", key),))],
    )

    assert results["sbom"].status is EvidenceStatus.MISSING
    assert f"no {SPDX_DOCUMENT} attestation found" in results["sbom"].reasons[0]


async def test_unreachable_registry_is_error(tmp_path: Path) -> None:
    _, key = ec_private_pem()
    async with RegistryClient.for_registry("127.0.0.1:9") as unreachable:
        results = await check_attestations(
            unreachable,
            REPOSITORY,
            "sha256:" + "a" * 64,
            [AttestationRequirement("sbom", SPDX_DOCUMENT, (KeyAuthority("ci", key),))],
        )

    assert results["sbom"].status is EvidenceStatus.ERROR
