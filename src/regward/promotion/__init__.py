"""Gated promotion: copy an image by digest, with its accessories, into another repository.

`Promoter.promote` resolves the source once, asks a `PromotionCheck` (by default
`PolicyCheck`, the destination repository's policy rule) and copies with `ImageCopier`:
cross-repository blob mounts on one registry, bounded streaming copies between registries.

Example:
    async with RegistryClient.for_registry("127.0.0.1:5000") as client:
        promoter = Promoter(PolicyCheck(load_policy("policy.yaml")))
        result = await promoter.promote(
            client, parse_reference("127.0.0.1:5000/dev/app:v1"),
            client, parse_reference("127.0.0.1:5000/prod/app:v1"),
        )
"""

from __future__ import annotations

from regward.promotion.accessories import (
    COSIGN_TAG_KINDS,
    copy_accessories,
    merge_referrers_index,
    merge_signature_manifests,
)
from regward.promotion.copy import DEFAULT_COPY_LIMITS, CopyLimits, ImageCopier, PushedManifest
from regward.promotion.interface import (
    AccessoryKind,
    BlobTransfer,
    CheckOutcome,
    CopiedAccessory,
    CopyError,
    CopyReport,
    PromotionCheck,
    PromotionError,
    PromotionResult,
    PromotionSubject,
)
from regward.promotion.policycheck import PolicyCheck
from regward.promotion.promote import AuditSink, Promoter

__all__ = [
    "COSIGN_TAG_KINDS",
    "DEFAULT_COPY_LIMITS",
    "AccessoryKind",
    "AuditSink",
    "BlobTransfer",
    "CheckOutcome",
    "CopiedAccessory",
    "CopyError",
    "CopyLimits",
    "CopyReport",
    "ImageCopier",
    "PolicyCheck",
    "Promoter",
    "PromotionCheck",
    "PromotionError",
    "PromotionResult",
    "PromotionSubject",
    "PushedManifest",
    "copy_accessories",
    "merge_referrers_index",
    "merge_signature_manifests",
]
