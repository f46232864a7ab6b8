"""Gated promotion: copy an image by digest, with its accessories, into another repository.

`Promoter.promote` resolves the source once, checks it with a `PromotionCheck` (by default
`PolicyCheck`, the destination repository's policy rule) and copies it with `ImageCopier`. On one
registry blobs are mounted across repositories, and between registries they are streamed with
bounded memory.

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
    DestinationDigestError,
    PromotionCheck,
    PromotionError,
    PromotionResult,
    PromotionSubject,
)
from regward.promotion.policycheck import DeciderCheck, PolicyCheck
from regward.promotion.promote import AuditSink, Promoter, result_json

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
    "DeciderCheck",
    "DestinationDigestError",
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
    "result_json",
]
