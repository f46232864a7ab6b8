"""Value types, the policy check protocol and the base error of `regward.promotion`.

A promotion copies one image digest from a source repository to a destination repository,
with its accessories, after a `PromotionCheck` allowed it under the destination's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from regward.errors import RegwardError
from regward.oci.client import RegistryClient
from regward.oci.manifest import Manifest


class PromotionError(RegwardError):
    """A promotion could not be carried out: bad input, or a registry step failed."""


class DestinationDigestError(PromotionError):
    """The destination names a digest other than the one the source resolved to."""


class CopyError(PromotionError):
    """The destination registry rejected an upload, or a copied blob did not verify."""

    def __init__(
        self,
        message: str,
        *,
        repository: str = "",
        digest: str = "",
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.repository = repository
        """The destination repository of the failed step."""
        self.digest = digest
        """The blob or manifest digest that was being copied."""
        self.status_code = status_code
        """The HTTP status of the failed request, None when no response arrived."""
        self.code = code
        """The first distribution error code in the response body, such as `BLOB_UNKNOWN`."""

    def diagnostics(self) -> str:
        """Return the message with a remedy."""
        return (
            f"{self}\nCheck that the destination credentials allow push to {self.repository} "
            "and that the registry accepts the manifest and blob media types."
        )


class BlobTransfer(StrEnum):
    """The way one blob reached the destination repository."""

    PRESENT = "present"
    """The destination already had it."""

    MOUNTED = "mounted"
    """Cross-repository mount on the same registry: no bytes moved."""

    STREAMED = "streamed"
    """Downloaded from the source and uploaded to the destination in chunks."""

    SKIPPED = "skipped"
    """A foreign (non-distributable) layer that registries do not store."""


class AccessoryKind(StrEnum):
    """Kinds of artifacts that travel with an image."""

    SIGNATURE = "signature"
    """cosign `sha256-<hex>.sig` tag."""

    ATTESTATION = "attestation"
    """cosign `sha256-<hex>.att` tag."""

    SBOM = "sbom"
    """cosign `sha256-<hex>.sbom` tag."""

    REFERRER = "referrer"
    """A manifest whose `subject` is the image (OCI 1.1), found by the referrers API or tag."""


@dataclass(frozen=True)
class CopiedAccessory:
    """One accessory copied to the destination."""

    kind: AccessoryKind
    subject: str
    """The digest the accessory belongs to (the image, a child of its index, or a referrer)."""
    digest: str
    """The accessory manifest digest at the destination."""
    tag: str | None = None
    """The tag it was pushed under, for cosign tags; None for referrers."""
    merged: bool = False
    """True when the destination already had a different manifest under the tag and the layers
    of both were merged into a new manifest."""
    artifact_type: str | None = None


@dataclass(frozen=True)
class CopyReport:
    """The manifests, blobs and accessories one copy moved."""

    digest: str
    """The image manifest digest, identical at source and destination."""
    manifests_copied: int = 0
    """Manifests pushed to the destination (image, index children, accessories)."""
    manifests_present: int = 0
    """Manifests the destination already had."""
    blobs: dict[BlobTransfer, int] = field(default_factory=dict)
    """Blob count per transfer kind."""
    bytes_streamed: int = 0
    accessories: tuple[CopiedAccessory, ...] = ()
    referrers_fallback_updated: tuple[str, ...] = ()
    """Subjects whose `sha256-<hex>` referrers index was written at the destination, because the
    destination has no referrers API."""


@dataclass(frozen=True)
class PromotionSubject:
    """The resolved source image that a `PromotionCheck` decides on."""

    client: RegistryClient
    """Client for the source registry, to read signatures and other evidence."""
    repository: str
    """The source repository."""
    digest: str
    """The source image digest, resolved once."""
    manifest: Manifest
    destination_repository: str
    """The repository whose rule decides."""
    destination: str
    """The destination as `registry/repository[:tag]`, for messages."""


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of a `PromotionCheck`."""

    allowed: bool
    rule: str | None
    """The destination rule that decided, None when the policy's defaultAction did."""
    reasons: tuple[str, ...] = ()
    """Reasons of a refusal, or the problems an allowing decision tolerated (mode warn/audit)."""
    policy_revision: str | None = None


class PromotionCheck(Protocol):
    """Decides whether a source digest may enter the destination repository."""

    async def check(self, subject: PromotionSubject) -> CheckOutcome:
        """Return whether the destination's rule allows `subject`.

        Evidence the check cannot fetch is a reason to refuse, not an exception, unless the
        rule's `onError` allows it.
        """
        ...


@dataclass(frozen=True)
class PromotionResult:
    """The outcome of one promotion."""

    promoted: bool
    source: str
    """The source reference as resolved: `registry/repository@digest`."""
    destination: str
    """The destination as `registry/repository[:tag]`."""
    digest: str
    tag: str | None
    """The tag set at the destination, if any."""
    check: CheckOutcome
    report: CopyReport | None = None
    """None when the promotion was refused before copying."""
