"""Signature and attestation evidence as read from a registry, before any verification.

`regward.signatures.discovery` fills these; `regward.signatures.fetch` and
`regward.signatures.attestations` verify what they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regward.oci.manifest import Descriptor
from regward.signatures.cosign import SignatureLayer
from regward.signatures.dsse import Statement


@dataclass(frozen=True)
class FoundBundle:
    """A Sigstore bundle read from a referrer manifest of the image."""

    manifest_digest: str
    """Digest of the referrer manifest."""
    document: bytes = field(repr=False)
    """The bundle JSON."""
    predicate_type: str | None = None
    """The `dev.sigstore.bundle.predicateType` manifest annotation (untrusted), normalised."""


@dataclass(frozen=True)
class BuildKitStatement:
    """An unsigned statement from a BuildKit attestation manifest."""

    manifest_digest: str
    """Digest of the attestation manifest."""
    attached_to: str
    """Digest of the platform manifest that the index names as the attestation's subject."""
    statement: Statement
    """The parsed statement."""


@dataclass
class FoundEvidence:
    """Attestation evidence read from a registry for one digest, before verification."""

    att_layers: list[SignatureLayer] = field(default_factory=list)
    """DSSE layers of the `.att` manifest and of in-toto referrers."""
    bundles: list[FoundBundle] = field(default_factory=list)
    """Sigstore bundles attached as referrers."""
    buildkit: list[BuildKitStatement] = field(default_factory=list)
    """Unsigned BuildKit statements."""
    buildkit_children: tuple[str, ...] = ()
    """Platform manifests of the index that BuildKit statements must cover when the checked
    digest is the index itself; empty otherwise."""
    found_artifact: bool = False
    """True when an `.att` manifest or an attestation referrer exists."""
    fetch_errors: list[str] = field(default_factory=list)
    """Failures to read evidence."""
    unusable: list[str] = field(default_factory=list)
    """Evidence that exists but cannot be checked."""


@dataclass
class ReferrerArtifacts:
    """The referrers of one digest, sorted by kind, with bundles already downloaded."""

    listed: bool = False
    """True once the referrers list was read (an empty list included)."""
    cosign_signatures: list[Descriptor] = field(default_factory=list)
    """Referrers with cosign's OCI 1.1 signature artifact type."""
    bundles: list[FoundBundle] = field(default_factory=list)
    """Sigstore bundles, downloaded, whose manifest names the digest as its subject."""
    in_toto: list[Descriptor] = field(default_factory=list)
    """Referrers holding DSSE attestation layers."""
    fetch_errors: list[str] = field(default_factory=list)
    """Failures to list or read referrers."""
    unusable: list[str] = field(default_factory=list)
    """Referrers that exist but cannot be used (wrong subject, malformed, too many)."""
