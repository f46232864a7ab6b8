"""Copy manifests and blobs by digest from one repository to another, possibly on another registry.

Manifests are copied as the exact bytes fetched (and verified) from the source, so the digest is
the same at the destination. An index is pushed after every child it lists, and a manifest after
its config and layers, because registries check references when a manifest is pushed.

Blobs take the cheapest path the destination offers:

1. a `HEAD` finds it already there;
2. on the same registry, a cross-repository mount
   (`POST /v2/<dst>/blobs/uploads/?mount=<digest>&from=<src>`) links it without moving bytes;
3. otherwise (or when the registry responds to the mount with a plain upload session) the blob is
   streamed: read from the source in chunks of `CopyLimits.chunk_size` bytes, hashed on the way,
   and written to the destination in one `PUT ?digest=`. Memory stays bounded by the chunk size,
   and a blob whose bytes do not match its digest or size aborts the upload.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from regward.oci.client import FetchedManifest, RegistryClient
from regward.oci.digest import DigestVerifier, compute_digest
from regward.oci.errors import DigestMismatchError, OCIError
from regward.oci.manifest import Descriptor
from regward.oci.mediatypes import DOCKER_FOREIGN_LAYER, base_media_type
from regward.promotion.interface import BlobTransfer, CopyError

logger = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 64 * 1024
_NON_DISTRIBUTABLE_MARKER = ".nondistributable."


@dataclass(frozen=True)
class CopyLimits:
    """Bounds on one copy."""

    chunk_size: int = 1024 * 1024
    """Bytes read from the source and written to the destination at a time, per streamed blob."""
    blob_concurrency: int = 4
    """Blobs transferred at the same time."""
    max_manifests: int = 10_000
    """Manifests one copy may push or check, accessories included."""
    max_index_depth: int = 4
    """Nesting of image indexes inside image indexes."""

    def __post_init__(self) -> None:
        for name in ("chunk_size", "blob_concurrency", "max_manifests", "max_index_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CopyError(f"invalid copy limit {name}={value!r}: must be a positive integer")


DEFAULT_COPY_LIMITS = CopyLimits()
"""The default `CopyLimits`."""


@dataclass
class CopyCounters:
    """Running totals of one `ImageCopier`."""

    manifests_copied: int = 0
    manifests_present: int = 0
    blobs: dict[BlobTransfer, int] = field(default_factory=dict)
    bytes_streamed: int = 0

    def count_blob(self, transfer: BlobTransfer) -> None:
        """Add one blob transferred by `transfer`."""
        self.blobs[transfer] = self.blobs.get(transfer, 0) + 1


@dataclass(frozen=True)
class PushedManifest:
    """A manifest at the destination after `ImageCopier.copy_manifest`."""

    fetched: FetchedManifest
    """The source manifest, whose bytes the destination now has."""
    pushed: bool
    """False when the destination already had the digest."""
    subject_processed: bool
    """True when the destination's response to the push had an `OCI-Subject` header, which
    means it indexes referrers itself (OCI distribution 1.1)."""


class ImageCopier:
    """Copies manifests and blobs between two registry clients (or one, on the same registry).

    One copier serves one promotion: it remembers what it already copied to each destination
    repository, so shared layers and repeated children move once.
    """

    def __init__(
        self,
        source: RegistryClient,
        destination: RegistryClient,
        *,
        same_registry: bool,
        limits: CopyLimits = DEFAULT_COPY_LIMITS,
    ) -> None:
        """Create a copier.

        Args:
            source: client for the source registry.
            destination: client for the destination registry; may be `source` itself.
            same_registry: whether both clients reach the same registry, which allows
                cross-repository blob mounts.
            limits: chunk size, concurrency and count limits.
        """
        self.source = source
        self.destination = destination
        self.same_registry = same_registry
        self.limits = limits
        self.counters = CopyCounters()
        self._blob_slots = asyncio.Semaphore(limits.blob_concurrency)
        self._blobs: dict[tuple[str, str], asyncio.Task[BlobTransfer]] = {}
        self._manifests: dict[tuple[str, str], PushedManifest] = {}
        self._manifest_locks: dict[tuple[str, str], asyncio.Lock] = {}

    # -- manifests -----------------------------------------------------------------------

    async def copy_manifest(
        self, source_repository: str, destination_repository: str, digest: str, *, depth: int = 0
    ) -> PushedManifest:
        """Copy a manifest by digest, with every child and blob it references.

        Raises:
            CopyError: the destination rejected a push, a blob did not verify, or a limit was
                exceeded.
            OCIError: the source could not be read (missing manifest or blob, registry failure).
        """
        key = (destination_repository, digest)
        lock = self._manifest_locks.setdefault(key, asyncio.Lock())
        async with lock:
            done = self._manifests.get(key)
            if done is not None:
                return done
            if len(self._manifests) >= self.limits.max_manifests:
                raise CopyError(
                    f"copy to {destination_repository} needs more than "
                    f"{self.limits.max_manifests} manifests",
                    repository=destination_repository,
                    digest=digest,
                )
            fetched = await self.source.get_manifest(source_repository, digest)
            present = await self.destination.head_manifest(destination_repository, digest)
            if present is not None:
                self.counters.manifests_present += 1
                result = PushedManifest(fetched, pushed=False, subject_processed=False)
                logger.debug("%s@%s is already at the destination", destination_repository, digest)
            else:
                await self._copy_references(
                    source_repository, destination_repository, fetched, depth
                )
                processed = await self.put_manifest(
                    destination_repository, digest, fetched.raw, fetched.media_type
                )
                self.counters.manifests_copied += 1
                result = PushedManifest(fetched, pushed=True, subject_processed=processed)
            self._manifests[key] = result
            return result

    def copied(self, repository: str, digest: str) -> PushedManifest | None:
        """Return what `copy_manifest` did for `digest` in `repository`, None if not called."""
        return self._manifests.get((repository, digest))

    def image_digests(self, repository: str, digest: str) -> list[str]:
        """Return `digest` and, for an index, every manifest under it that this copier copied."""
        found: list[str] = []
        pending = [digest]
        while pending:
            current = pending.pop(0)
            if current in found:
                continue
            found.append(current)
            pushed = self.copied(repository, current)
            if pushed is not None and pushed.fetched.manifest.is_index:
                pending.extend(child.digest for child in pushed.fetched.manifest.manifests)
        return found

    async def _copy_references(
        self,
        source_repository: str,
        destination_repository: str,
        fetched: FetchedManifest,
        depth: int,
    ) -> None:
        manifest = fetched.manifest
        if manifest.is_index:
            if depth >= self.limits.max_index_depth:
                raise CopyError(
                    f"index {fetched.digest} nests image indexes more than "
                    f"{self.limits.max_index_depth} levels deep",
                    repository=destination_repository,
                    digest=fetched.digest,
                )
            await asyncio.gather(
                *(
                    self.copy_manifest(
                        source_repository, destination_repository, child.digest, depth=depth + 1
                    )
                    for child in manifest.manifests
                )
            )
            return
        blobs: list[Descriptor] = list(manifest.layers)
        if manifest.config is not None:
            blobs.insert(0, manifest.config)
        await asyncio.gather(
            *(self.copy_blob(source_repository, destination_repository, blob) for blob in blobs)
        )

    async def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> bool:
        """Push manifest bytes under a tag or digest and return whether `OCI-Subject` came back.

        Raises:
            CopyError: the registry did not return 201, or reported another digest.
        """
        digest = compute_digest(raw)
        response = await self.destination.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            data=raw,
        )
        try:
            if response.status != 201:
                raise await _failure(
                    response, f"push of manifest {repository}:{reference}", repository, digest
                )
            announced = response.headers.get("Docker-Content-Digest", "").strip()
            subject = response.headers.get("OCI-Subject")
        finally:
            response.release()
        if announced and announced != digest:
            raise CopyError(
                f"push of manifest {repository}:{reference}: the registry stored {announced}, "
                f"expected {digest}",
                repository=repository,
                digest=digest,
            )
        logger.debug("pushed manifest %s:%s (%s)", repository, reference, digest)
        return subject is not None

    # -- blobs ---------------------------------------------------------------------------

    async def copy_blob(
        self, source_repository: str, destination_repository: str, descriptor: Descriptor
    ) -> BlobTransfer:
        """Make `descriptor`'s blob available in the destination repository.

        Raises:
            CopyError: the upload failed or the streamed bytes do not match the descriptor.
            OCIError: the source could not serve the blob.
        """
        key = (destination_repository, descriptor.digest)
        task = self._blobs.get(key)
        if task is None:
            task = asyncio.ensure_future(
                self._transfer(source_repository, destination_repository, descriptor)
            )
            self._blobs[key] = task
        return await asyncio.shield(task)

    async def _transfer(
        self, source_repository: str, destination_repository: str, descriptor: Descriptor
    ) -> BlobTransfer:
        async with self._blob_slots:
            transfer = await self._transfer_unbounded(
                source_repository, destination_repository, descriptor
            )
        self.counters.count_blob(transfer)
        return transfer

    async def _transfer_unbounded(
        self, source_repository: str, destination_repository: str, descriptor: Descriptor
    ) -> BlobTransfer:
        digest = descriptor.digest
        if _is_foreign(descriptor):
            logger.debug("skipping foreign layer %s of %s", digest, source_repository)
            return BlobTransfer.SKIPPED
        if await self._blob_exists(destination_repository, digest):
            return BlobTransfer.PRESENT

        upload_path: str | None = None
        if self.same_registry and source_repository != destination_repository:
            upload_path = await self._mount(source_repository, destination_repository, digest)
            if upload_path is None:
                return BlobTransfer.MOUNTED
        if upload_path is None:
            upload_path = await self._start_upload(destination_repository, digest)
        await self._stream(source_repository, destination_repository, descriptor, upload_path)
        return BlobTransfer.STREAMED

    async def upload_bytes(self, repository: str, data: bytes) -> str:
        """Upload a small blob held in memory, unless the repository has it, and return its digest.

        Raises:
            CopyError: the registry rejected the upload.
        """
        digest = compute_digest(data)
        if await self._blob_exists(repository, digest):
            return digest
        path = await self._start_upload(repository, digest)
        response = await self.destination.request(
            "PUT",
            path,
            headers={"Content-Type": "application/octet-stream"},
            data=data,
            params=[("digest", digest)],
        )
        try:
            if response.status != 201:
                raise await _failure(response, f"upload of blob {digest}", repository, digest)
        finally:
            response.release()
        return digest

    async def _blob_exists(self, repository: str, digest: str) -> bool:
        response = await self.destination.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        try:
            if response.status == 200:
                return True
            if response.status == 404:
                return False
            raise await _failure(
                response, f"check for blob {digest}", repository, digest, read_body=False
            )
        finally:
            response.release()

    async def _mount(self, source_repository: str, repository: str, digest: str) -> str | None:
        """Mount a blob from another repository; return None when mounted, else an upload path.

        A registry that cannot mount (the blob is not readable from `source_repository` with
        the credentials in use) starts an ordinary upload session instead and returns 202.
        """
        response = await self.destination.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            params=[("mount", digest), ("from", source_repository)],
            data=b"",
        )
        try:
            if response.status == 201:
                logger.debug("mounted %s from %s into %s", digest, source_repository, repository)
                return None
            if response.status == 202:
                logger.debug(
                    "registry did not mount %s from %s into %s; streaming it",
                    digest,
                    source_repository,
                    repository,
                )
                return self._upload_path(response, repository, digest)
            raise await _failure(
                response, f"mount of blob {digest} from {source_repository}", repository, digest
            )
        finally:
            response.release()

    async def _start_upload(self, repository: str, digest: str) -> str:
        response = await self.destination.request(
            "POST", f"/v2/{repository}/blobs/uploads/", data=b""
        )
        try:
            if response.status != 202:
                raise await _failure(
                    response, f"start of the upload of blob {digest}", repository, digest
                )
            return self._upload_path(response, repository, digest)
        finally:
            response.release()

    def _upload_path(self, response: aiohttp.ClientResponse, repository: str, digest: str) -> str:
        """Turn an upload `Location` header into a `/v2/...` path on the destination registry."""
        location = response.headers.get("Location", "")
        try:
            url = URL(location)
        except ValueError as exc:
            raise CopyError(
                f"registry sent an invalid upload location for {repository}: {location!r}",
                repository=repository,
                digest=digest,
            ) from exc
        if url.is_absolute():
            if url.origin() != URL(self.destination.base_url).origin():
                # NOTE: uploads sent to another origin (such as object storage behind a
                # redirect) are not supported; CNCF distribution keeps them on its own origin.
                raise CopyError(
                    f"registry sent the upload for {repository} to another origin "
                    f"{url.origin()}; uploads to another origin are not supported",
                    repository=repository,
                    digest=digest,
                )
            url = url.relative()
        if not url.raw_path.startswith("/v2/"):
            raise CopyError(
                f"registry sent an invalid upload location for {repository}: {location!r}",
                repository=repository,
                digest=digest,
            )
        return str(url)

    async def _stream(
        self,
        source_repository: str,
        destination_repository: str,
        descriptor: Descriptor,
        upload_path: str,
    ) -> None:
        digest = descriptor.digest
        subject = f"blob {source_repository}@{digest}"
        verifier = DigestVerifier(digest, subject=subject)
        failures: list[BaseException] = []
        chunk_size = self.limits.chunk_size
        source = await self.source.open_blob(source_repository, digest)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in source.content.iter_chunked(chunk_size):
                    verifier.update(chunk)
                    if verifier.size > descriptor.size:
                        raise CopyError(
                            f"{subject} is larger than its descriptor: more than "
                            f"{descriptor.size} bytes",
                            repository=destination_repository,
                            digest=digest,
                        )
                    yield chunk
                if verifier.size != descriptor.size:
                    raise CopyError(
                        f"{subject} ended after {verifier.size} of {descriptor.size} bytes",
                        repository=destination_repository,
                        digest=digest,
                    )
                verifier.verify()
            except (CopyError, DigestMismatchError, aiohttp.ClientError, TimeoutError) as exc:
                failures.append(exc)
                raise

        try:
            try:
                response = await self.destination.request(
                    "PUT",
                    upload_path,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(descriptor.size),
                    },
                    data=chunks(),
                    params=[("digest", digest)],
                )
            except OCIError as exc:
                if failures:
                    raise _stream_failure(failures[0], destination_repository, digest) from exc
                raise
            try:
                if failures:
                    raise _stream_failure(failures[0], destination_repository, digest)
                if response.status != 201:
                    raise await _failure(
                        response, f"upload of blob {digest}", destination_repository, digest
                    )
            finally:
                response.release()
        except BaseException:
            await self._cancel_upload(upload_path)
            raise
        finally:
            source.release()
        self.counters.bytes_streamed += descriptor.size
        logger.debug(
            "streamed %s (%d bytes) from %s to %s",
            digest,
            descriptor.size,
            source_repository,
            destination_repository,
        )

    async def _cancel_upload(self, upload_path: str) -> None:
        """Delete an unfinished upload session; a failure here only leaves it to expire."""
        try:
            response = await self.destination.request("DELETE", upload_path)
            response.release()
        except OCIError:
            logger.debug("could not cancel upload %s", upload_path, exc_info=True)


def _is_foreign(descriptor: Descriptor) -> bool:
    """Tell whether a layer is non-distributable, which registries do not store."""
    media_type = base_media_type(descriptor.media_type)
    return media_type == DOCKER_FOREIGN_LAYER or _NON_DISTRIBUTABLE_MARKER in media_type


def _stream_failure(failure: BaseException, repository: str, digest: str) -> CopyError:
    if isinstance(failure, CopyError):
        return failure
    if isinstance(failure, DigestMismatchError):
        return CopyError(str(failure), repository=repository, digest=digest)
    return CopyError(
        f"reading blob {digest} from the source failed during the copy: "
        f"{type(failure).__name__}: {failure}",
        repository=repository,
        digest=digest,
    )


async def _failure(
    response: aiohttp.ClientResponse,
    what: str,
    repository: str,
    digest: str,
    *,
    read_body: bool = True,
) -> CopyError:
    """Build the error for an unexpected response, with the distribution error code if any."""
    code: str | None = None
    message = ""
    if read_body:
        try:
            body = await response.content.read(_ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        code, message = _distribution_error(body)
    detail = f"HTTP {response.status}"
    if code:
        detail += f" {code}"
    if message:
        detail += f": {message}"
    return CopyError(
        f"{what} to {repository} failed: {detail}",
        repository=repository,
        digest=digest,
        status_code=response.status,
        code=code,
    )


def _distribution_error(body: bytes) -> tuple[str | None, str]:
    """Return the first error code and message of a distribution API error body."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None, ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, ""
    code = errors[0].get("code")
    message = errors[0].get("message")
    code_text = code if isinstance(code, str) and code.isprintable() and len(code) <= 64 else None
    message_text = message[:300] if isinstance(message, str) and message.isprintable() else ""
    return code_text, message_text
