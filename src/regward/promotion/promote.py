"""Promote an image: resolve the source once, check the destination's rule, copy, tag, audit.

Steps of `Promoter.promote`:

1. Resolve the source reference to a digest with one manifest GET; every later read uses
   that digest, so a tag that moves during the promotion cannot change what is promoted.
2. Ask the `PromotionCheck` whether the destination's rule allows the digest. A refusal is
   audited and returned; nothing is copied.
3. Copy the image by digest: blobs, then manifests (children before their index).
4. Copy its accessories: cosign `.sig`/`.att`/`.sbom` tags and referrers.
5. Set the destination tag last, so a failure in 3 or 4 leaves no tag pointing at a
   half-copied image.
6. Audit the promotion (action `push` on the destination repository).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from regward.oci.client import RegistryClient
from regward.oci.errors import OCIError
from regward.oci.reference import Reference
from regward.promotion.accessories import copy_accessories
from regward.promotion.copy import DEFAULT_COPY_LIMITS, CopyLimits, ImageCopier
from regward.promotion.interface import (
    CheckOutcome,
    CopyReport,
    DestinationDigestError,
    PromotionCheck,
    PromotionError,
    PromotionResult,
    PromotionSubject,
)
from regward.store.db import AuditRecord

logger = logging.getLogger(__name__)

AuditSink = Callable[[AuditRecord], None]
"""Receives the audit record of each promotion, such as `AuditWriter.submit`."""


class Promoter:
    """Promotes images under a `PromotionCheck` and audits every attempt."""

    def __init__(
        self,
        check: PromotionCheck,
        *,
        audit: AuditSink | None = None,
        identity: str | None = None,
        limits: CopyLimits = DEFAULT_COPY_LIMITS,
    ) -> None:
        """Create a promoter.

        Args:
            check: decides whether a digest may enter the destination repository.
            audit: receives one audit record per promotion attempt; None records nothing.
            identity: who asked, for the audit record.
            limits: bounds on the copy.
        """
        self.check = check
        self.audit = audit
        self.identity = identity
        self.limits = limits

    async def promote(
        self,
        source_client: RegistryClient,
        source: Reference,
        destination_client: RegistryClient,
        destination: Reference,
    ) -> PromotionResult:
        """Promote `source` to `destination`; see the module docstring for the steps.

        Args:
            source_client: client for `source.registry`.
            source: the image to promote, by tag or digest (`latest` when it names neither).
            destination_client: client for `destination.registry`; the same object as
                `source_client` when both name one registry.
            destination: the repository to copy to, with an optional tag. A digest, if
                given, must equal the source's.

        Returns:
            The result; `promoted` is False when the check refused.

        Raises:
            PromotionError: the destination names another digest, or a copy step failed.
            OCIError: the source could not be resolved or read.
        """
        destination_name = _destination_name(destination)

        # (1): resolve the source once.
        reference = source.digest or source.tag or "latest"
        fetched = await source_client.get_manifest(source.repository, reference)
        digest = fetched.digest
        resolved = f"{source.registry}/{source.repository}@{digest}"
        if destination.digest is not None and destination.digest != digest:
            raise DestinationDigestError(
                f"destination {destination} names digest {destination.digest}, but source "
                f"{source} resolved to {digest}"
            )
        logger.info("promoting %s (%s) to %s", source, digest, destination_name)

        # (2): the destination's rule.
        subject = PromotionSubject(
            client=source_client,
            repository=source.repository,
            digest=digest,
            manifest=fetched.manifest,
            destination_repository=destination.repository,
            destination=destination_name,
        )
        outcome = await self.check.check(subject)
        if not outcome.allowed:
            logger.info("promotion of %s to %s rejected by the policy", resolved, destination_name)
            self._audit(destination, digest, "deny", outcome, list(outcome.reasons))
            return PromotionResult(
                False, resolved, destination_name, digest, destination.tag, outcome
            )

        try:
            report = await self._copy(
                source_client, source, destination_client, destination, digest
            )
        except (PromotionError, OCIError) as exc:
            self._audit(
                destination, digest, "error", outcome, [f"promotion from {resolved} failed: {exc}"]
            )
            raise

        # (6): audit.
        reasons = [f"promoted from {resolved}", *outcome.reasons]
        self._audit(destination, digest, "allow", outcome, reasons)
        logger.info(
            "promoted %s to %s: %d manifests and %d accessories copied",
            resolved,
            destination_name,
            report.manifests_copied,
            len(report.accessories),
        )
        return PromotionResult(
            True, resolved, destination_name, digest, destination.tag, outcome, report
        )

    async def _copy(
        self,
        source_client: RegistryClient,
        source: Reference,
        destination_client: RegistryClient,
        destination: Reference,
        digest: str,
    ) -> CopyReport:
        copier = ImageCopier(
            source_client,
            destination_client,
            same_registry=source_client is destination_client
            or source.registry == destination.registry,
            limits=self.limits,
        )

        # (3): the image.
        pushed = await copier.copy_manifest(source.repository, destination.repository, digest)

        # (4): accessories of the image and of every manifest its index lists.
        subjects = copier.image_digests(destination.repository, digest)
        accessories = await copy_accessories(
            copier, source.repository, destination.repository, subjects
        )

        # (5): the tag, last.
        if destination.tag is not None:
            fetched = pushed.fetched
            await copier.put_manifest(
                destination.repository, destination.tag, fetched.raw, fetched.media_type
            )

        counters = copier.counters
        return CopyReport(
            digest=digest,
            manifests_copied=counters.manifests_copied,
            manifests_present=counters.manifests_present,
            blobs=dict(counters.blobs),
            bytes_streamed=counters.bytes_streamed,
            accessories=tuple(accessories.accessories),
            referrers_fallback_updated=tuple(accessories.fallback_updated),
        )

    def _audit(
        self,
        destination: Reference,
        digest: str,
        decision: str,
        outcome: CheckOutcome,
        reasons: list[str],
    ) -> None:
        if self.audit is None:
            return
        self.audit(
            AuditRecord(
                time=datetime.now(UTC),
                identity=self.identity,
                action="push",
                repository=destination.repository,
                reference=destination.tag or digest,
                digest=digest,
                decision=decision,
                rule=outcome.rule,
                reasons=reasons,
                policy_revision=outcome.policy_revision,
            )
        )


def result_json(result: PromotionResult) -> dict[str, Any]:
    """Return the JSON form of a promotion result, as the gate endpoint and the CLI print it."""
    document: dict[str, Any] = {
        "promoted": result.promoted,
        "source": result.source,
        "destination": result.destination,
        "digest": result.digest,
        "tag": result.tag,
        "rule": result.check.rule,
        "policyRevision": result.check.policy_revision,
        "reasons": list(result.check.reasons),
    }
    if result.report is not None:
        report = result.report
        document["copied"] = {
            "manifests": report.manifests_copied,
            "manifestsPresent": report.manifests_present,
            "blobs": {str(kind): count for kind, count in report.blobs.items()},
            "bytesStreamed": report.bytes_streamed,
            "accessories": [
                {
                    "kind": str(item.kind),
                    "subject": item.subject,
                    "digest": item.digest,
                    "tag": item.tag,
                    "merged": item.merged,
                    "artifactType": item.artifact_type,
                }
                for item in report.accessories
            ],
        }
    return document


def _destination_name(destination: Reference) -> str:
    name = f"{destination.registry}/{destination.repository}"
    if destination.tag is not None:
        name += f":{destination.tag}"
    return name
