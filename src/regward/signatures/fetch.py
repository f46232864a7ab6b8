"""Fetch an image's cosign signatures from a registry and check them against key authorities.

This is the I/O adapter around `regward.signatures.cosign.verify_layer`. For each signature
location (the image's repository, or an authority's `signature_repository`) it reads the
`sha256-<hex>.sig` manifest once, downloads each simple-signing layer once, and verifies every
layer against every authority that uses that location. Signatures pushed as OCI 1.1 referrers
are read too, for the authorities that the `.sig` tag did not verify: cosign's OCI 1.1 form
(artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`) and Sigstore bundles whose
statement has the predicate type `https://sigstore.dev/cosign/sign/v1` (or that carry a message
signature over the image digest). Bundles with other predicate types are attestations and are
left to `regward.signatures.fetch_attestations`.

Authorities are `KeyAuthority` (a public key) or `KeylessAuthority` (a Fulcio identity checked
against a trusted root).

The result per authority keeps "no signature exists" (MISSING) apart from "signatures exist but
none verifies" (INVALID) and from "the registry could not be read" (ERROR), because a policy may
treat each differently.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from regward.oci.client import RegistryClient
from regward.oci.errors import (
    DigestMismatchError,
    NotFoundError,
    OCIError,
    RegistryError,
)
from regward.oci.manifest import Descriptor, Manifest
from regward.oci.mediatypes import base_media_type
from regward.oci.reference import normalize_registry, validate_repository
from regward.signatures.artifacts import FoundBundle
from regward.signatures.bundles import (
    Authority,
    VerifiedBundle,
    bundle_claims_signature,
    verify_bundle,
)
from regward.signatures.cosign import (
    MAX_PAYLOAD_SIZE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SignatureLayer,
    VerifiedSignature,
    signature_tag,
    verify_layer,
)
from regward.signatures.discovery import read_referrers
from regward.signatures.dsse import COSIGN_SIGN_PREDICATE_TYPE
from regward.signatures.errors import SignatureError, SignatureVerificationError
from regward.signatures.keyless import KeylessAuthority, verify_keyless_layer

logger = logging.getLogger(__name__)

MAX_SIGNATURE_LAYERS = 64
"""Maximum number of signature layers downloaded per location; the rest are reported."""

MAX_REFERRER_MANIFESTS = 16
"""Maximum number of cosign referrer manifests read per location; the rest are reported."""


class EvidenceStatus(StrEnum):
    """Outcome of checking one authority's signatures on one image digest."""

    VERIFIED = "verified"
    """At least one signature verified with the authority's key."""
    MISSING = "missing"
    """No signature artifact exists: the `.sig` tag is absent and no cosign referrer exists."""
    INVALID = "invalid"
    """Signatures exist, but none verified with this authority."""
    ERROR = "error"
    """The evidence could not be read: network failure, 5xx, authentication, timeout, or content
    that did not match its digest. Signatures may exist."""


@dataclass(frozen=True)
class AuthorityResult:
    """The outcome for one authority, with the accepted signatures and readable reasons."""

    authority: str
    """Name of the authority."""
    status: EvidenceStatus
    """Overall outcome."""
    verified: tuple[VerifiedSignature, ...]
    """Signatures that passed every check; empty unless `status` is VERIFIED."""
    reasons: tuple[str, ...]
    """Explanations of the status, most important first."""


@dataclass
class _Location:
    """Signatures read from one repository, shared by the authorities that look there."""

    client: RegistryClient
    repository: str
    authorities: list[Authority] = field(default_factory=list)
    layers: list[SignatureLayer] = field(default_factory=list)
    """Signature layers downloaded and ready to verify."""
    unusable: list[str] = field(default_factory=list)
    """Signature evidence that was found but cannot be checked (malformed, too large)."""
    fetch_errors: list[str] = field(default_factory=list)
    """Failures to read evidence from the registry."""
    found_artifact: bool = False
    """True once a `.sig` manifest or a cosign referrer was found."""
    verified: dict[str, list[VerifiedSignature]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)


async def check_authorities(
    client: RegistryClient,
    repository: str,
    digest: str,
    authorities: Sequence[Authority],
    *,
    clients: Callable[[str], RegistryClient] | None = None,
) -> dict[str, AuthorityResult]:
    """Check every authority's cosign signatures and signature bundles on `repository@digest`.

    Args:
        client: client for the image's registry.
        repository: the image's repository on that registry, e.g. `org/app`.
        digest: the image manifest digest that was resolved and will be served.
        authorities: the key and keyless authorities to check; names must be unique.
        clients: returns a client for another registry host (canonical `host[:port]`), for
            authorities whose `signature_repository` is `host/repo`. The caller owns and
            closes the clients it returns.

    Returns:
        A result per authority name, in the order given. A registry failure gives ERROR,
        never MISSING.

    Raises:
        SignatureError: `digest` is not a valid digest or two authorities share a name.
    """
    names = [authority.name for authority in authorities]
    if len(set(names)) != len(names):
        raise SignatureError(f"authority names must be unique: got {names}")
    tag = signature_tag(digest)

    results: dict[str, AuthorityResult] = {}
    locations: dict[tuple[int, str], _Location] = {}
    # One client per host for this call, so authorities that share a repository share reads.
    client_for = functools.cache(clients) if clients is not None else None
    for authority in authorities:
        try:
            location_client, location_repository = _signature_location(
                client, repository, authority, client_for
            )
        except SignatureError as exc:
            logger.debug("authority %s has no usable signature location: %s", authority.name, exc)
            results[authority.name] = AuthorityResult(
                authority.name, EvidenceStatus.ERROR, (), (str(exc),)
            )
            continue
        key = (id(location_client), location_repository)
        if key not in locations:
            locations[key] = _Location(location_client, location_repository)
        locations[key].authorities.append(authority)

    await asyncio.gather(
        *(_check_location(location, digest, tag) for location in locations.values())
    )
    for location in locations.values():
        for authority in location.authorities:
            results[authority.name] = _result(location, authority.name, digest, tag)
            logger.debug(
                "signatures of %s for authority %s: %s",
                digest,
                authority.name,
                results[authority.name].status,
            )
    return {name: results[name] for name in names}


def _signature_location(
    client: RegistryClient,
    repository: str,
    authority: Authority,
    clients: Callable[[str], RegistryClient] | None,
) -> tuple[RegistryClient, str]:
    """Return the client and repository that hold `authority`'s signatures."""
    target = authority.signature_repository
    if target is None:
        return client, repository

    # Docker's rule: the first path component names a registry only if it contains "." or ":"
    # or is "localhost".
    first, separator, rest = target.partition("/")
    is_host = separator and ("." in first or ":" in first or first == "localhost")
    try:
        host = normalize_registry(first) if is_host else None
        validate_repository(rest if is_host else target)
    except OCIError as exc:
        raise SignatureError(
            f"authority {authority.name!r} has an invalid signature repository {target!r}: {exc}"
        ) from exc
    if host is None:
        return client, target
    if clients is None:
        raise SignatureError(
            f"authority {authority.name!r} reads signatures from registry {host}, but no "
            "client for other registries was given"
        )
    return clients(host), rest


async def _check_location(location: _Location, digest: str, tag: str) -> None:
    """Read the `.sig` manifest, then the cosign referrers if needed, and verify every layer."""
    for authority in location.authorities:
        location.verified[authority.name] = []
        location.failures[authority.name] = []

    # The tag-based form, which cosign writes by default before v3.
    manifest = await _fetch_manifest(location, tag, f"signature manifest {tag}")
    if manifest is not None:
        location.found_artifact = True
        await _read_layers(location, manifest)
        _verify_layers(location, digest, location.layers)

    # The OCI 1.1 forms are read only for authorities that the tag did not verify, so that a
    # referrers failure cannot turn a verified result into an error.
    if all(location.verified[authority.name] for authority in location.authorities):
        return
    referrers = await read_referrers(
        location.client, location.repository, digest, attestations=False
    )
    if referrers.fetch_errors:
        location.fetch_errors.extend(referrers.fetch_errors)
        if not referrers.listed:
            return
    for text in referrers.unusable:
        # Bundle referrers may be attestations, so their problems are not signature reasons.
        logger.debug("referrer of %s in %s: %s", digest, location.repository, text)

    descriptors = referrers.cosign_signatures
    if len(descriptors) > MAX_REFERRER_MANIFESTS:
        location.unusable.append(
            f"{len(descriptors) - MAX_REFERRER_MANIFESTS} cosign referrers not read "
            f"(limit {MAX_REFERRER_MANIFESTS})"
        )
    before = len(location.layers)
    for descriptor in descriptors[:MAX_REFERRER_MANIFESTS]:
        referrer = await _fetch_manifest(
            location, descriptor.digest, f"cosign referrer {descriptor.digest}"
        )
        if referrer is None:
            continue
        location.found_artifact = True
        # The listing is only a hint: the manifest itself must name the image as its subject.
        if referrer.subject is None or referrer.subject.digest != digest:
            subject = referrer.subject.digest if referrer.subject is not None else None
            location.unusable.append(
                f"cosign referrer {descriptor.digest} has the wrong subject: got {subject}, "
                f"expected {digest}"
            )
            continue
        await _read_layers(location, referrer)
    _verify_layers(location, digest, location.layers[before:])
    _verify_bundles(location, digest, referrers.bundles)


async def _fetch_manifest(location: _Location, reference: str, what: str) -> Manifest | None:
    """Return the manifest, or None when it is absent or unusable (recorded on `location`)."""
    try:
        fetched = await location.client.get_manifest(location.repository, reference)
    except NotFoundError:
        logger.debug("%s not found in %s", what, location.repository)
        return None
    except (RegistryError, DigestMismatchError) as exc:
        logger.debug("fetching %s from %s failed", what, location.repository, exc_info=True)
        location.fetch_errors.append(f"could not fetch {what} from {location.repository}: {exc}")
        return None
    except OCIError as exc:
        # Malformed or oversized content: the artifact exists but cannot be used.
        logger.debug("%s in %s is unusable", what, location.repository, exc_info=True)
        location.found_artifact = True
        location.unusable.append(f"{what} is unusable: {exc}")
        return None
    return fetched.manifest


async def _read_layers(location: _Location, manifest: Manifest) -> None:
    """Download the simple-signing layers of a signature manifest, up to MAX_SIGNATURE_LAYERS."""
    candidates = [
        layer
        for layer in manifest.layers
        if base_media_type(layer.media_type) == SIMPLE_SIGNING_MEDIA_TYPE
    ]
    if not candidates:
        location.unusable.append(
            f"signature manifest {manifest.digest} has no simple-signing layers"
        )
        return
    room = max(MAX_SIGNATURE_LAYERS - len(location.layers), 0)
    if len(candidates) > room:
        location.unusable.append(
            f"{len(candidates) - room} signature layers of {manifest.digest} not checked "
            f"(limit {MAX_SIGNATURE_LAYERS})"
        )
        candidates = candidates[:room]
    downloaded = await asyncio.gather(*(_download_layer(location, layer) for layer in candidates))
    location.layers.extend(layer for layer in downloaded if layer is not None)


async def _download_layer(location: _Location, descriptor: Descriptor) -> SignatureLayer | None:
    """Download one layer blob; the client checks it against the descriptor's digest."""
    if descriptor.size > MAX_PAYLOAD_SIZE:
        location.unusable.append(
            f"signature layer {descriptor.digest} is too large: got {descriptor.size} bytes, "
            f"expected at most {MAX_PAYLOAD_SIZE}"
        )
        return None
    try:
        payload = await location.client.get_blob(
            location.repository, descriptor.digest, max_size=MAX_PAYLOAD_SIZE
        )
    except (RegistryError, DigestMismatchError) as exc:
        logger.debug("downloading signature layer %s failed", descriptor.digest, exc_info=True)
        location.fetch_errors.append(
            f"could not fetch signature layer {descriptor.digest} from {location.repository}: {exc}"
        )
        return None
    except OCIError as exc:
        logger.debug("signature layer %s is unusable", descriptor.digest, exc_info=True)
        location.unusable.append(f"signature layer {descriptor.digest} is unusable: {exc}")
        return None
    return SignatureLayer(payload, descriptor.annotations, descriptor.digest)


def _verify_layers(location: _Location, digest: str, layers: Sequence[SignatureLayer]) -> None:
    for layer in layers:
        for authority in location.authorities:
            try:
                if isinstance(authority, KeylessAuthority):
                    signature = verify_keyless_layer(layer, digest, authority)
                else:
                    signature = verify_layer(layer, digest, authority)
            except SignatureVerificationError as exc:
                logger.debug(
                    "layer %s rejected for authority %s: %s",
                    layer.layer_digest,
                    authority.name,
                    exc,
                )
                location.failures[authority.name].append(f"{exc} (layer {layer.layer_digest})")
                continue
            location.verified[authority.name].append(signature)


def _verify_bundles(location: _Location, digest: str, bundles: Sequence[FoundBundle]) -> None:
    """Verify signature bundles for the authorities that nothing verified yet."""
    for bundle in bundles:
        if not bundle_claims_signature(bundle.document, bundle.predicate_type):
            continue
        location.found_artifact = True
        for authority in location.authorities:
            if location.verified[authority.name]:
                continue
            try:
                verified = verify_bundle(bundle.document, digest, authority)
            except SignatureVerificationError as exc:
                logger.debug(
                    "bundle %s rejected for authority %s: %s",
                    bundle.manifest_digest,
                    authority.name,
                    exc,
                )
                location.failures[authority.name].append(f"{exc} (bundle {bundle.manifest_digest})")
                continue
            signature = _bundle_signature(verified, digest, bundle.manifest_digest)
            if signature is None:
                location.failures[authority.name].append(
                    f"bundle {bundle.manifest_digest} is an attestation of type "
                    f"{verified.predicate_type}, not a signature"
                )
                continue
            location.verified[authority.name].append(signature)


def _bundle_signature(
    verified: VerifiedBundle, digest: str, manifest_digest: str
) -> VerifiedSignature | None:
    """Return a verified signature bundle as a `VerifiedSignature`; None for an attestation."""
    statement = verified.statement
    if statement is not None and statement.normalized_predicate_type != COSIGN_SIGN_PREDICATE_TYPE:
        return None
    names = [subject.name for subject in statement.subjects if subject.name] if statement else []
    return VerifiedSignature(
        authority=verified.authority,
        image_digest=digest,
        docker_reference=names[0] if names else "",
        payload=statement.raw if statement is not None else b"",
        optional={},
        tlog_verified=verified.integrated_time is not None or verified.subject is not None,
        layer_digest=manifest_digest,
        key_id=verified.key_id or "",
        integrated_time=verified.integrated_time,
        log_index=verified.log_index,
        subject=verified.subject,
        issuer=verified.issuer,
    )


def _describe(signature: VerifiedSignature, name: str) -> str:
    if signature.subject is not None:
        return (
            f"verified by authority {name!r} with a certificate for {signature.subject} "
            f"(issuer {signature.issuer}) ({signature.layer_digest})"
        )
    return (
        f"verified by authority {name!r} with key sha256:{signature.key_id} "
        f"(layer {signature.layer_digest})"
    )


def _result(location: _Location, name: str, digest: str, tag: str) -> AuthorityResult:
    """Classify one authority's outcome from what was read at its location."""
    verified = tuple(location.verified[name])
    failures = location.failures[name]
    if verified:
        reasons = tuple(_describe(signature, name) for signature in verified)
        return AuthorityResult(name, EvidenceStatus.VERIFIED, verified, reasons)

    if location.fetch_errors:
        summary = f"could not read all signatures of {digest} for authority {name!r}: " + "; ".join(
            location.fetch_errors
        )
        return AuthorityResult(name, EvidenceStatus.ERROR, (), (summary, *failures))

    if not location.found_artifact:
        summary = (
            f"no signature found: no tag {tag} in {location.repository} and no signature referrers"
        )
        return AuthorityResult(name, EvidenceStatus.MISSING, (), (summary,))

    found = len(failures)
    details = "; ".join([*failures, *location.unusable])
    if found:
        counted = f"{found} signature{'' if found == 1 else 's'} found, all failed"
    else:
        counted = "no usable signature found"
    summary = f"{counted}: {details}"
    return AuthorityResult(name, EvidenceStatus.INVALID, (), (summary,))
