"""Copy an image's accessories: cosign tags and OCI 1.1 referrers, with their own accessories.

cosign writes signatures, attestations and SBOMs under tags derived from the image digest,
`sha256-<hex>.sig`, `.att` and `.sbom`. When the destination already has a different manifest
under a `.sig` or `.att` tag (the image was signed there too), the layers of both are merged
into a new manifest, as `cosign sign` appends a signature, so no signature is lost. A `.sbom`
tag is replaced by the source's.

Referrers are manifests whose `subject` is the image. The source's list comes from the
referrers API or, on registries without it, from the `sha256-<hex>` fallback index
(`RegistryClient.referrers`). Each referrer is copied by digest. A destination with the
referrers API indexes them itself. For one without, the fallback index at the destination is
read, the copied referrers are added to it, and it is pushed again. The source's fallback index
is never copied as it is, because it can list referrers that were not copied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regward.oci.client import FetchedManifest
from regward.oci.digest import compute_digest, referrers_tag
from regward.oci.errors import ManifestError, NotFoundError
from regward.oci.manifest import Descriptor
from regward.oci.mediatypes import INDEX_MEDIA_TYPES, OCI_INDEX, OCI_MANIFEST
from regward.promotion.copy import ImageCopier
from regward.promotion.interface import AccessoryKind, CopiedAccessory, CopyError
from regward.signatures.cosign import signature_tag
from regward.signatures.sign import build_signature_manifest

logger = logging.getLogger(__name__)

COSIGN_TAG_KINDS: dict[str, AccessoryKind] = {
    "sig": AccessoryKind.SIGNATURE,
    "att": AccessoryKind.ATTESTATION,
    "sbom": AccessoryKind.SBOM,
}
"""cosign tag suffixes and the accessory kind each holds."""

_MERGED_SUFFIXES = frozenset({"sig", "att"})

MAX_ACCESSORY_DEPTH = 3
"""Levels of accessories followed: accessories of the image, their accessories (a signature on
an SBOM referrer), and one level more."""


@dataclass
class AccessoryCopy:
    """Accessories copied so far by one `copy_accessories` call."""

    accessories: list[CopiedAccessory] = field(default_factory=list)
    fallback_updated: list[str] = field(default_factory=list)
    """Subjects whose `sha256-<hex>` fallback index was written at the destination."""


async def copy_accessories(
    copier: ImageCopier,
    source_repository: str,
    destination_repository: str,
    subjects: Sequence[str],
    *,
    max_depth: int = MAX_ACCESSORY_DEPTH,
) -> AccessoryCopy:
    """Copy the cosign tags and referrers of every digest in `subjects`, and theirs in turn.

    Args:
        copier: the copier of the promotion, which already copied the subjects.
        source_repository: the repository the subjects came from.
        destination_repository: the repository they were copied to.
        subjects: manifest digests whose accessories to copy: the image and, for an index,
            every manifest it lists.
        max_depth: levels of accessories of accessories to follow.

    Raises:
        CopyError: the destination rejected a push.
        OCIError: the source could not be read.
    """
    result = AccessoryCopy()
    copier_state = _Walk(copier, source_repository, destination_repository, result)
    pending = [(subject, 0) for subject in subjects]
    seen: set[str] = set()
    while pending:
        subject, depth = pending.pop(0)
        if subject in seen or depth >= max_depth:
            continue
        seen.add(subject)
        found = await copier_state.cosign_tags(subject)
        found += await copier_state.referrers(subject)
        pending.extend((digest, depth + 1) for digest in found)
    return result


@dataclass
class _Walk:
    copier: ImageCopier
    source_repository: str
    destination_repository: str
    result: AccessoryCopy
    referrers_api: bool | None = None
    """Whether the destination serves the referrers API; None until probed."""

    async def cosign_tags(self, subject: str) -> list[str]:
        """Copy the `.sig`, `.att` and `.sbom` tags of `subject`; return the copied digests."""
        copied: list[str] = []
        for suffix, kind in COSIGN_TAG_KINDS.items():
            tag = signature_tag(subject, suffix)
            try:
                fetched = await self.copier.source.get_manifest(self.source_repository, tag)
            except NotFoundError:
                continue
            accessory = await self._copy_tag(subject, tag, suffix, kind, fetched)
            self.result.accessories.append(accessory)
            copied.append(fetched.digest)
        return copied

    async def _copy_tag(
        self, subject: str, tag: str, suffix: str, kind: AccessoryKind, fetched: FetchedManifest
    ) -> CopiedAccessory:
        destination = self.destination_repository
        try:
            existing: FetchedManifest | None = await self.copier.destination.get_manifest(
                destination, tag
            )
        except NotFoundError:
            existing = None

        if existing is not None and existing.digest == fetched.digest:
            return CopiedAccessory(kind, subject, fetched.digest, tag)

        await self.copier.copy_manifest(self.source_repository, destination, fetched.digest)
        if existing is not None and suffix in _MERGED_SUFFIXES and not existing.manifest.is_index:
            merged = merge_signature_manifests(existing.raw, fetched.raw)
            if merged is None:
                logger.debug("%s:%s already contains every layer of the source's", destination, tag)
                return CopiedAccessory(kind, subject, existing.digest, tag)
            manifest, config = merged
            await self.copier.upload_bytes(destination, config)
            await self.copier.put_manifest(destination, tag, manifest, OCI_MANIFEST)
            logger.info(
                "merged the layers of %s:%s at the destination with the source's", destination, tag
            )
            return CopiedAccessory(kind, subject, compute_digest(manifest), tag, merged=True)

        if existing is not None:
            logger.info("replacing %s:%s at the destination with the source's", destination, tag)
        await self.copier.put_manifest(destination, tag, fetched.raw, fetched.media_type)
        return CopiedAccessory(kind, subject, fetched.digest, tag)

    async def referrers(self, subject: str) -> list[str]:
        """Copy the referrers of `subject`; return the copied digests."""
        listed = await self.copier.source.referrers(self.source_repository, subject)
        copied: list[Descriptor] = []
        for descriptor in listed:
            try:
                pushed = await self.copier.copy_manifest(
                    self.source_repository, self.destination_repository, descriptor.digest
                )
            except NotFoundError:
                logger.debug(
                    "referrer %s of %s is listed but missing in %s; skipped",
                    descriptor.digest,
                    subject,
                    self.source_repository,
                )
                continue
            manifest = pushed.fetched.manifest
            if manifest.subject is None or manifest.subject.digest != subject:
                # A fallback index is an ordinary tag anyone can write; trust only the manifest.
                logger.debug(
                    "manifest %s is listed as a referrer of %s but names subject %s; skipped",
                    descriptor.digest,
                    subject,
                    manifest.subject.digest if manifest.subject else None,
                )
                continue
            if pushed.subject_processed:
                self.referrers_api = True
            copied.append(manifest.descriptor())
            self.result.accessories.append(
                CopiedAccessory(
                    AccessoryKind.REFERRER,
                    subject,
                    manifest.digest,
                    artifact_type=manifest.effective_artifact_type,
                )
            )
        if copied and not await self._destination_has_referrers_api(subject):
            await self._update_fallback_index(subject, copied)
        return [descriptor.digest for descriptor in copied]

    async def _destination_has_referrers_api(self, subject: str) -> bool:
        if self.referrers_api is None:
            self.referrers_api = await probe_referrers_api(
                self.copier, self.destination_repository, subject
            )
        return self.referrers_api

    async def _update_fallback_index(self, subject: str, additions: list[Descriptor]) -> None:
        destination = self.destination_repository
        tag = referrers_tag(subject)
        try:
            existing: bytes | None = (
                await self.copier.destination.get_manifest(destination, tag)
            ).raw
        except NotFoundError:
            existing = None
        except ManifestError as exc:
            # A tag that contains no valid index counts as "no referrers" (distribution spec,
            # referrers tag schema), so it is replaced.
            logger.debug("fallback index %s:%s is invalid, replacing it: %s", destination, tag, exc)
            existing = None
        merged = merge_referrers_index(existing, additions)
        if merged is None:
            return
        await self.copier.put_manifest(destination, tag, merged, OCI_INDEX)
        self.result.fallback_updated.append(subject)
        logger.debug("updated referrers fallback index %s:%s", destination, tag)


async def probe_referrers_api(copier: ImageCopier, repository: str, subject: str) -> bool:
    """Tell whether the destination returns an index for `GET /v2/<repository>/referrers/<subject>`.

    Raises:
        OCIError: the registry could not be reached.
    """
    response = await copier.destination.request(
        "GET", f"/v2/{repository}/referrers/{subject}", headers={"Accept": OCI_INDEX}
    )
    try:
        if response.status != 200:
            return False
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return content_type == OCI_INDEX
    finally:
        response.release()


def descriptor_json(descriptor: Descriptor) -> dict[str, Any]:
    """Return the JSON form of a descriptor as an index entry."""
    entry: dict[str, Any] = {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    }
    if descriptor.artifact_type:
        entry["artifactType"] = descriptor.artifact_type
    if descriptor.annotations:
        entry["annotations"] = dict(descriptor.annotations)
    return entry


def merge_referrers_index(existing: bytes | None, additions: Sequence[Descriptor]) -> bytes | None:
    """Add descriptors to a referrers fallback index; return the new bytes, or None if unchanged.

    Entries of `existing` are kept as written, in order, and new digests are appended. An
    `existing` that is not an OCI image index is replaced, because the distribution spec treats
    such a tag as holding no referrers.
    """
    document: dict[str, Any] | None = None
    if existing is not None:
        try:
            parsed = json.loads(existing)
        except (ValueError, RecursionError):
            parsed = None
        if (
            isinstance(parsed, dict)
            and parsed.get("mediaType", OCI_INDEX) in INDEX_MEDIA_TYPES
            and isinstance(parsed.get("manifests"), list)
            and all(isinstance(entry, dict) for entry in parsed["manifests"])
        ):
            document = parsed
    valid = document is not None
    if document is None:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    manifests: list[dict[str, Any]] = list(document["manifests"])
    present = {entry.get("digest") for entry in manifests}
    added = False
    for descriptor in additions:
        if descriptor.digest in present:
            continue
        manifests.append(descriptor_json(descriptor))
        present.add(descriptor.digest)
        added = True
    if valid and not added:
        return None
    document = {**document, "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return json.dumps(document, separators=(",", ":")).encode()


def merge_signature_manifests(existing: bytes, incoming: bytes) -> tuple[bytes, bytes] | None:
    """Merge the layers of two cosign `.sig`/`.att` manifests.

    Returns:
        (manifest, config) of a manifest with every layer of `existing` followed by each layer of
        `incoming` it lacks, or None when `existing` already has them all. Layers are equal when
        digest and annotations are.

    Raises:
        CopyError: a manifest has no valid `layers` list.
    """
    kept = _layers(existing, "destination")
    keys = {_layer_key(layer) for layer in kept}
    new = [layer for layer in _layers(incoming, "source") if _layer_key(layer) not in keys]
    if not new:
        return None
    return build_signature_manifest(kept + new)


def _layers(raw: bytes, where: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CopyError(f"the {where} signature manifest is not valid JSON") from exc
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise CopyError(f"the {where} signature manifest has no valid layers list")
    return list(layers)


def _layer_key(layer: dict[str, Any]) -> str:
    return json.dumps(
        [layer.get("digest"), layer.get("annotations") or {}], sort_keys=True, default=str
    )
