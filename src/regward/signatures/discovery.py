"""Reading signature and attestation artifacts of an image from a registry.

Three places hold them:
- OCI 1.1 referrers of the image digest, listed through the referrers API or, on registries
  without it, the `sha256-<hex>` referrers tag schema index. Sigstore bundles
  (`application/vnd.dev.sigstore.bundle.v0.3+json` and the `+json;version=0.x` forms), cosign's
  OCI 1.1 signatures and in-toto DSSE attestations are recognised by artifact type. Index
  entries without an artifact type, as go-containerregistry before v0.22.1 wrote them, are
  opened and recognised by their layer media types.
- cosign's `sha256-<hex>.att` tag for DSSE attestation layers.
- BuildKit attestation manifests inside an image index (`vnd.docker.reference.type:
  attestation-manifest`), whose layers are unsigned in-toto statements.

Everything read here is size-capped and digest-checked by the registry client. A missing
artifact is not an error; a failed read is recorded so that callers can tell "none exists"
from "could not look".
"""

from __future__ import annotations

import asyncio
import logging

from regward.oci.client import RegistryClient
from regward.oci.errors import DigestMismatchError, NotFoundError, OCIError, RegistryError
from regward.oci.manifest import Descriptor, Manifest
from regward.oci.mediatypes import OCI_EMPTY, base_media_type
from regward.signatures.artifacts import (
    BuildKitStatement,
    FoundBundle,
    FoundEvidence,
    ReferrerArtifacts,
)
from regward.signatures.bundles import MAX_BUNDLE_SIZE, is_bundle_media_type
from regward.signatures.cosign import (
    COSIGN_SIGNATURE_ARTIFACT_TYPE,
    SignatureLayer,
    signature_tag,
)
from regward.signatures.dsse import (
    COSIGN_SIGN_PREDICATE_TYPE,
    DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    MAX_ENVELOPE_SIZE,
    normalize_predicate_type,
    parse_statement,
)
from regward.signatures.errors import SignatureVerificationError

logger = logging.getLogger(__name__)

MAX_BUNDLE_REFERRERS = 32
"""Maximum number of bundle referrers read per digest; the rest are reported as not read."""

MAX_ATTESTATION_LAYERS = 64
"""Maximum number of DSSE attestation layers downloaded per digest."""

MAX_BUILDKIT_MANIFESTS = 64
"""Maximum number of BuildKit attestation manifests read from one index."""

MAX_BUILDKIT_STATEMENT_SIZE = 16 * 1024 * 1024
"""Maximum size in bytes of one BuildKit statement layer (SBOMs can be large)."""

IN_TOTO_ARTIFACT_TYPE = IN_TOTO_PAYLOAD_TYPE
"""Artifact type of cosign's in-toto attestations pushed as OCI 1.1 referrers."""

BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
"""Manifest annotation cosign sets on bundle referrers; untrusted, used to skip early."""

BUILDKIT_REFERENCE_TYPE = "vnd.docker.reference.type"
"""Index entry annotation that marks a BuildKit attestation manifest."""

BUILDKIT_REFERENCE_DIGEST = "vnd.docker.reference.digest"
"""Index entry annotation naming the platform manifest the attestations are about."""

BUILDKIT_ATTESTATION_MANIFEST = "attestation-manifest"
"""Value of `vnd.docker.reference.type` for attestation manifests."""

BUILDKIT_PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
"""Layer annotation BuildKit sets on each statement layer."""

_CHILD_CONCURRENCY = 4


async def read_referrers(
    client: RegistryClient,
    repository: str,
    digest: str,
    *,
    signatures: bool = True,
    attestations: bool = True,
) -> ReferrerArtifacts:
    """List the referrers of `repository@digest` and download the Sigstore bundles among them.

    A bundle whose manifest annotates a predicate type is downloaded only when that kind is
    wanted: `https://sigstore.dev/cosign/sign/v1` for `signatures`, any other type for
    `attestations`. Bundles without the annotation are always downloaded.

    Returns:
        The referrers by kind. A failure to list is recorded in `fetch_errors` with the text
        `could not list referrers of <digest> in <repository>: <cause>`.
    """
    found = ReferrerArtifacts()
    try:
        descriptors = await client.referrers(repository, digest)
    except NotFoundError:
        descriptors = []
    except OCIError as exc:
        logger.debug("listing referrers of %s in %s failed", digest, repository, exc_info=True)
        found.fetch_errors.append(f"could not list referrers of {digest} in {repository}: {exc}")
        return found
    found.listed = True

    candidates: list[Descriptor] = []
    for descriptor in descriptors:
        artifact_type = (descriptor.artifact_type or "").replace(" ", "")
        if artifact_type == COSIGN_SIGNATURE_ARTIFACT_TYPE:
            found.cosign_signatures.append(descriptor)
        elif artifact_type == IN_TOTO_ARTIFACT_TYPE:
            found.in_toto.append(descriptor)
        elif is_bundle_media_type(artifact_type) or artifact_type in ("", OCI_EMPTY):
            # An empty artifact type comes from an old fallback index; the manifest decides.
            candidates.append(descriptor)
    if len(candidates) > MAX_BUNDLE_REFERRERS:
        found.unusable.append(
            f"{len(candidates) - MAX_BUNDLE_REFERRERS} bundle referrers of {digest} not read "
            f"(limit {MAX_BUNDLE_REFERRERS})"
        )
        candidates = candidates[:MAX_BUNDLE_REFERRERS]

    semaphore = asyncio.Semaphore(_CHILD_CONCURRENCY)

    async def read(descriptor: Descriptor) -> None:
        async with semaphore:
            await _read_bundle_referrer(
                client, repository, digest, descriptor, found, (signatures, attestations)
            )

    await asyncio.gather(*(read(descriptor) for descriptor in candidates))
    return found


async def _read_bundle_referrer(
    client: RegistryClient,
    repository: str,
    digest: str,
    descriptor: Descriptor,
    found: ReferrerArtifacts,
    wanted: tuple[bool, bool],
) -> None:
    what = f"referrer {descriptor.digest}"
    manifest = await fetch_manifest(client, repository, descriptor.digest, what, found)
    if manifest is None or manifest.is_index:
        return
    bundle_layers = [layer for layer in manifest.layers if is_bundle_media_type(layer.media_type)]
    if not bundle_layers:
        if base_media_type(manifest.artifact_type or "") == IN_TOTO_ARTIFACT_TYPE or any(
            base_media_type(layer.media_type) == DSSE_ENVELOPE_MEDIA_TYPE
            for layer in manifest.layers
        ):
            found.in_toto.append(descriptor)
        return
    # The listing is a hint only: the manifest itself must name the image as its subject.
    if manifest.subject is None or manifest.subject.digest != digest:
        subject = manifest.subject.digest if manifest.subject is not None else None
        found.unusable.append(
            f"bundle referrer {descriptor.digest} has the wrong subject: got {subject}, "
            f"expected {digest}"
        )
        return
    annotated = manifest.annotations.get(BUNDLE_PREDICATE_ANNOTATION)
    if annotated:
        is_signature = normalize_predicate_type(annotated) == COSIGN_SIGN_PREDICATE_TYPE
        if not wanted[0 if is_signature else 1]:
            return
    for layer in bundle_layers[:1]:
        document = await fetch_blob(client, repository, layer, MAX_BUNDLE_SIZE, found)
        if document is not None:
            found.bundles.append(
                FoundBundle(
                    manifest_digest=manifest.digest,
                    document=document,
                    predicate_type=normalize_predicate_type(annotated) if annotated else None,
                )
            )
    if len(bundle_layers) > 1:
        found.unusable.append(
            f"bundle referrer {descriptor.digest} has {len(bundle_layers)} bundle layers; "
            "only the first was read"
        )


async def read_attestation_evidence(
    client: RegistryClient,
    repository: str,
    digest: str,
    *,
    referrers: ReferrerArtifacts | None = None,
    index: Manifest | None = None,
) -> FoundEvidence:
    """Read every attestation of `repository@digest`: `.att` layers, bundles, BuildKit.

    Args:
        client: client for the registry.
        repository: the image's repository.
        digest: the checked manifest digest.
        referrers: referrers already read for this digest, to avoid a second listing.
        index: an image index that may hold BuildKit attestation manifests: the manifest of
            `digest` itself when it is an index, or an index that lists `digest`.

    Returns:
        The evidence, with fetch errors and unusable items recorded.
    """
    evidence = FoundEvidence()

    # cosign's tag-based form.
    tag = signature_tag(digest, "att")
    manifest = await fetch_manifest(
        client, repository, tag, f"attestation manifest {tag}", evidence
    )
    if manifest is not None:
        evidence.found_artifact = True
        await _read_dsse_layers(client, repository, manifest, evidence)

    # OCI 1.1 referrers: bundles and in-toto manifests.
    if referrers is None:
        referrers = await read_referrers(client, repository, digest, signatures=False)
    evidence.fetch_errors.extend(referrers.fetch_errors)
    evidence.unusable.extend(referrers.unusable)
    evidence.bundles.extend(referrers.bundles)
    if referrers.bundles or referrers.in_toto:
        evidence.found_artifact = True
    for descriptor in referrers.in_toto[:MAX_BUNDLE_REFERRERS]:
        referrer = await fetch_manifest(
            client, repository, descriptor.digest, f"in-toto referrer {descriptor.digest}", evidence
        )
        if referrer is None:
            continue
        if referrer.subject is None or referrer.subject.digest != digest:
            evidence.unusable.append(
                f"in-toto referrer {descriptor.digest} does not name {digest} as its subject"
            )
            continue
        await _read_dsse_layers(client, repository, referrer, evidence)

    # BuildKit.
    if index is not None and index.is_index:
        await _read_buildkit(client, repository, digest, index, evidence)
    return evidence


async def _read_dsse_layers(
    client: RegistryClient, repository: str, manifest: Manifest, evidence: FoundEvidence
) -> None:
    layers = [
        layer
        for layer in manifest.layers
        if base_media_type(layer.media_type) == DSSE_ENVELOPE_MEDIA_TYPE
    ]
    if not layers:
        evidence.unusable.append(f"attestation manifest {manifest.digest} has no DSSE layers")
        return
    room = max(MAX_ATTESTATION_LAYERS - len(evidence.att_layers), 0)
    if len(layers) > room:
        evidence.unusable.append(
            f"{len(layers) - room} attestation layers of {manifest.digest} not checked "
            f"(limit {MAX_ATTESTATION_LAYERS})"
        )
        layers = layers[:room]
    blobs = await asyncio.gather(
        *(fetch_blob(client, repository, layer, MAX_ENVELOPE_SIZE, evidence) for layer in layers)
    )
    evidence.att_layers.extend(
        SignatureLayer(blob, layer.annotations, layer.digest)
        for layer, blob in zip(layers, blobs, strict=True)
        if blob is not None
    )


async def _read_buildkit(
    client: RegistryClient, repository: str, digest: str, index: Manifest, evidence: FoundEvidence
) -> None:
    """Read BuildKit attestation manifests of `index` that are about `digest` or its children."""
    platforms = [
        entry
        for entry in index.manifests
        if entry.annotations.get(BUILDKIT_REFERENCE_TYPE) != BUILDKIT_ATTESTATION_MANIFEST
    ]
    checking_index = index.digest == digest
    if checking_index:
        evidence.buildkit_children = tuple(entry.digest for entry in platforms)
    entries = [
        entry
        for entry in index.manifests
        if entry.annotations.get(BUILDKIT_REFERENCE_TYPE) == BUILDKIT_ATTESTATION_MANIFEST
        and (checking_index or entry.annotations.get(BUILDKIT_REFERENCE_DIGEST) == digest)
    ][:MAX_BUILDKIT_MANIFESTS]
    for entry in entries:
        attached_to = entry.annotations.get(BUILDKIT_REFERENCE_DIGEST, "")
        manifest = await fetch_manifest(
            client, repository, entry.digest, f"BuildKit attestation {entry.digest}", evidence
        )
        if manifest is None:
            continue
        evidence.found_artifact = True
        for layer in manifest.layers:
            if base_media_type(layer.media_type) != IN_TOTO_PAYLOAD_TYPE:
                continue
            blob = await fetch_blob(
                client, repository, layer, MAX_BUILDKIT_STATEMENT_SIZE, evidence
            )
            if blob is None:
                continue
            try:
                statement = parse_statement(blob)
            except SignatureVerificationError as exc:
                evidence.unusable.append(f"BuildKit statement {layer.digest} is unusable: {exc}")
                continue
            # BuildKit names the platform manifest as the subject; a statement about anything
            # else is ignored.
            if not statement.names_digest(attached_to):
                evidence.unusable.append(
                    f"BuildKit statement {layer.digest} is not about {attached_to}"
                )
                continue
            evidence.buildkit.append(BuildKitStatement(manifest.digest, attached_to, statement))


async def fetch_manifest(
    client: RegistryClient,
    repository: str,
    reference: str,
    what: str,
    record: ReferrerArtifacts | FoundEvidence,
) -> Manifest | None:
    """Return a manifest, or None when it is absent or unusable (recorded on `record`)."""
    try:
        fetched = await client.get_manifest(repository, reference)
    except NotFoundError:
        logger.debug("%s not found in %s", what, repository)
        return None
    except (RegistryError, DigestMismatchError) as exc:
        logger.debug("fetching %s from %s failed", what, repository, exc_info=True)
        record.fetch_errors.append(f"could not fetch {what} from {repository}: {exc}")
        return None
    except OCIError as exc:
        logger.debug("%s in %s is unusable", what, repository, exc_info=True)
        record.unusable.append(f"{what} is unusable: {exc}")
        return None
    return fetched.manifest


async def fetch_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    max_size: int,
    record: ReferrerArtifacts | FoundEvidence,
) -> bytes | None:
    """Download a blob the client checks against its digest; None when it cannot be used."""
    if descriptor.size > max_size:
        record.unusable.append(
            f"blob {descriptor.digest} is too large: got {descriptor.size} bytes, expected at "
            f"most {max_size}"
        )
        return None
    try:
        return await client.get_blob(repository, descriptor.digest, max_size=max_size)
    except (RegistryError, DigestMismatchError) as exc:
        logger.debug("downloading blob %s failed", descriptor.digest, exc_info=True)
        record.fetch_errors.append(
            f"could not fetch blob {descriptor.digest} from {repository}: {exc}"
        )
        return None
    except OCIError as exc:
        logger.debug("blob %s is unusable", descriptor.digest, exc_info=True)
        record.unusable.append(f"blob {descriptor.digest} is unusable: {exc}")
        return None
