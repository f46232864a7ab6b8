"""Catalog an image straight from a registry, streaming and verifying each layer.

The event loop reads the blob bodies and worker threads decompress and index them. A worker
requests each chunk from the loop with `run_coroutine_threadsafe`, so the loop is never blocked.
At most `LAYER_CONCURRENCY` layers are read at once.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any, Protocol

import aiohttp

from regward.oci.manifest import Manifest
from regward.sbom.catalog import catalog_filesystem, make_selector
from regward.sbom.catalogers import default_catalogers
from regward.sbom.filesystem import Budget, LayerIndex, merge_layers
from regward.sbom.interface import DEFAULT_LIMITS, Catalog, ImageSourceError, LayerError, Limits
from regward.sbom.sources import host_architecture, index_stream

logger = logging.getLogger(__name__)

LAYER_CONCURRENCY = 2
"""Layers downloaded and indexed at the same time."""
_CHUNK = 1024 * 1024


class RegistryLike(Protocol):
    """The methods of `regward.oci`'s `RegistryClient` that cataloging uses."""

    async def get_manifest(self, repository: str, reference: str) -> Any:
        """Return a fetched manifest whose `.manifest` is a parsed `Manifest`."""
        ...

    async def open_blob(self, repository: str, digest: str) -> aiohttp.ClientResponse:
        """Return the unverified response streaming the blob."""
        ...


class ThreadBlobReader:
    """A blocking reader, for a worker thread, over a response body read on the event loop."""

    def __init__(self, response: aiohttp.ClientResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._content = response.content
        self._loop = loop

    def read(self, size: int = -1) -> bytes:
        """Return up to `size` bytes; blocks the calling thread, never the loop."""
        if size < 0:
            size = _CHUNK
        future: Future[bytes] = asyncio.run_coroutine_threadsafe(
            self._content.read(size), self._loop
        )
        try:
            return future.result()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LayerError(f"reading the layer from the registry failed: {exc}") from exc


async def image_manifest(client: RegistryLike, repository: str, reference: str) -> Manifest:
    """Fetch the image manifest, choosing this machine's linux platform from an index.

    Raises:
        ImageSourceError: an index has no manifest for this platform, or indexes nest too deep.
    """
    where = f"{repository}@{reference}"
    architecture = host_architecture()
    for _ in range(4):
        manifest: Manifest = (await client.get_manifest(repository, reference)).manifest
        if not manifest.is_index:
            return manifest
        images = [
            d
            for d in manifest.manifests
            if d.annotations.get("vnd.docker.reference.type") != "attestation-manifest"
        ]
        chosen = next(
            (
                d
                for d in images
                if d.platform is not None
                and d.platform.os == "linux"
                and d.platform.architecture == architecture
            ),
            images[0] if len(images) == 1 else None,
        )
        if chosen is None:
            raise ImageSourceError(f"{where}: the index has no linux/{architecture} manifest")
        reference = chosen.digest
    raise ImageSourceError(f"{where}: indexes nested more than 4 levels")


async def catalog_image(
    client: RegistryLike,
    repository: str,
    digest: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> Catalog:
    """Catalog the image `repository@digest` by streaming its layers from a registry.

    Each layer's size and digest are checked before its index is used. An index manifest resolves
    to this machine's linux platform.

    Raises:
        ImageSourceError: the manifest is not an image manifest.
        LayerError: a layer is unreadable, corrupt, over a limit, or does not match its digest.
        regward.oci.errors.RegistryError: the registry failed to serve the manifest or a blob.
    """
    manifest = await image_manifest(client, repository, digest)
    catalogers = default_catalogers(limits)
    selector = make_selector(catalogers)
    budget = Budget(limits)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(LAYER_CONCURRENCY)

    async def index_one(number: int) -> LayerIndex:
        descriptor = manifest.layers[number]
        async with slots:
            response = await client.open_blob(repository, descriptor.digest)
            try:
                reader = ThreadBlobReader(response, loop)
                return await asyncio.to_thread(
                    index_stream, reader, descriptor.digest, descriptor.size, selector, budget
                )
            finally:
                response.release()

    indexes = await asyncio.gather(*(index_one(n) for n in range(len(manifest.layers))))
    logger.debug("indexed %d layers of %s@%s", len(indexes), repository, digest)
    fs = merge_layers(indexes, limits)
    return await asyncio.to_thread(catalog_filesystem, fs, catalogers=catalogers, limits=limits)
