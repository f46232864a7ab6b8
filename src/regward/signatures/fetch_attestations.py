"""Fetch an image's attestations from a registry and check them against requirements.

The I/O adapter around `regward.signatures.attestations.assess_attestations`: it reads the
`sha256-<hex>.att` manifest, the Sigstore bundle and in-toto referrers, and BuildKit attestation
manifests of an index, once for all requirements, then verifies and classifies them.

Each requirement's result keeps "no attestation of the type exists" (MISSING) apart from
"attestations exist but none verifies" (INVALID) and "the registry could not be read" (ERROR),
with the same meaning as for signatures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from regward.oci.client import RegistryClient
from regward.oci.manifest import Manifest
from regward.signatures.artifacts import ReferrerArtifacts
from regward.signatures.attestations import (
    AttestationRequirement,
    AttestationResult,
    assess_attestations,
)
from regward.signatures.cosign import signature_tag
from regward.signatures.discovery import read_attestation_evidence
from regward.signatures.errors import SignatureError

logger = logging.getLogger(__name__)


async def check_attestations(
    client: RegistryClient,
    repository: str,
    digest: str,
    requirements: Sequence[AttestationRequirement],
    *,
    index: Manifest | None = None,
    referrers: ReferrerArtifacts | None = None,
) -> dict[str, AttestationResult]:
    """Check every attestation requirement on `repository@digest`.

    Args:
        client: client for the image's registry.
        repository: the image's repository, e.g. `org/app`.
        digest: the manifest digest that was resolved and will be served.
        requirements: the requirements; names must be unique.
        index: an image index whose BuildKit attestation manifests may cover `digest`: the
            manifest of `digest` itself when it is an index, or an index that lists it.
        referrers: the referrers of `digest` if the caller already read them.

    Returns:
        A result per requirement name, in the order given. A registry failure gives ERROR,
        never MISSING, unless enough statements verified anyway.

    Raises:
        SignatureError: `digest` is not a valid digest or two requirements share a name.
    """
    names = [requirement.name for requirement in requirements]
    if len(set(names)) != len(names):
        raise SignatureError(f"attestation requirement names must be unique: got {names}")
    signature_tag(digest)  # validates the digest before any request
    if not requirements:
        return {}

    evidence = await read_attestation_evidence(
        client, repository, digest, referrers=referrers, index=index
    )
    logger.debug(
        "attestations of %s in %s: %d .att layers, %d bundles, %d BuildKit statements, "
        "%d fetch errors",
        digest,
        repository,
        len(evidence.att_layers),
        len(evidence.bundles),
        len(evidence.buildkit),
        len(evidence.fetch_errors),
    )
    results = assess_attestations(evidence, digest, requirements)
    for name, result in results.items():
        logger.debug("attestation %s of %s: %s", name, digest, result.status)
    return results
