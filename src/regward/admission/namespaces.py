"""Namespace labels for `requireDigest` selectors: from the configuration or the Kubernetes API.

An AdmissionReview for a Pod or a workload carries the namespace name but not its labels. The
labels come from the `namespaceLabels` map of the configuration, or from
`GET /api/v1/namespaces/{name}` with the service account token of the pod regward runs in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from regward.admission.config import NAMESPACE_NAME_LABEL, AdmissionSettings, NamespaceLabelSource
from regward.admission.interface import AdmissionConfigError, NamespaceLabelLookup
from regward.errors import RegwardError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""The folder where Kubernetes mounts a pod's service account token and the cluster CA."""

MAX_NAMESPACE_BODY_BYTES = 1024 * 1024
"""Maximum size of a Namespace object read from the API server."""

_NAMESPACE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class StaticNamespaceLabels:
    """Namespace labels from the configuration.

    Every namespace also gets `kubernetes.io/metadata.name`, as the API server sets it, so a
    selector on that label works without listing the namespace.
    """

    def __init__(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        self._labels = {name: dict(values) for name, values in labels.items()}

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """Return the configured labels of `namespace` plus its name label."""
        labels = dict(self._labels.get(namespace, {}))
        labels[NAMESPACE_NAME_LABEL] = namespace
        return labels


class KubernetesNamespaceLabels:
    """Namespace labels read from the Kubernetes API and kept for `ttl` seconds.

    Failed reads are kept for `failure_ttl` seconds, so an unreachable API server costs one
    request per namespace in that time rather than one per review.
    """

    def __init__(
        self,
        api_url: str,
        token_path: Path | None,
        ca_path: Path | None,
        *,
        ttl: float = 30.0,
        failure_ttl: float = 5.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_path = token_path
        self.ca_path = ca_path
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def in_cluster(cls) -> KubernetesNamespaceLabels:
        """Build a lookup from the environment Kubernetes gives every pod.

        Raises:
            AdmissionConfigError: KUBERNETES_SERVICE_HOST is not set, so regward is not
                running in a pod.
        """
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise AdmissionConfigError(
                "admission.namespaceLabelSource is kubernetes but KUBERNETES_SERVICE_HOST is not "
                "set; run regward in a pod or use namespaceLabelSource: config"
            )
        if ":" in host:
            host = f"[{host}]"
        return cls(
            f"https://{host}:{port}",
            SERVICE_ACCOUNT_DIR / "token",
            SERVICE_ACCOUNT_DIR / "ca.crt",
        )

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """Return the labels of `namespace`, or None when the API server cannot tell."""
        if not _NAMESPACE_NAME.fullmatch(namespace):
            logger.debug("not looking up invalid namespace name %r", namespace)
            return None
        now = self._clock()
        cached = self._cache.get(namespace)
        if cached is not None and cached[0] > now:
            return cached[1]
        labels = await self._fetch(namespace)
        ttl = self.ttl if labels is not None else self.failure_ttl
        self._cache[namespace] = (now + ttl, labels)
        return labels

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self.ca_path is not None and self.api_url.startswith("https://"):
                ssl_context = ssl.create_default_context(cafile=str(self.ca_path))
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=8),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def _fetch(self, namespace: str) -> dict[str, str] | None:
        headers = {"Accept": "application/json"}
        if self.token_path is not None:
            try:
                # Bound service account tokens are rotated on disk, so read the file each time.
                token = self.token_path.read_text().strip()
            except OSError as exc:
                logger.warning("cannot read the service account token %s: %s", self.token_path, exc)
                return None
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.api_url}/api/v1/namespaces/{namespace}"
        try:
            async with self._client().get(url, headers=headers, allow_redirects=False) as response:
                if response.status != 200:
                    logger.warning(
                        "reading namespace %s from the Kubernetes API failed: HTTP %d",
                        namespace,
                        response.status,
                    )
                    return None
                body = await response.content.read(MAX_NAMESPACE_BODY_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as exc:
            logger.warning(
                "reading namespace %s from the Kubernetes API failed: %s", namespace, exc
            )
            return None
        if len(body) > MAX_NAMESPACE_BODY_BYTES:
            logger.warning(
                "namespace %s from the Kubernetes API is larger than %d bytes",
                namespace,
                MAX_NAMESPACE_BODY_BYTES,
            )
            return None
        return _labels_of(namespace, body)


def _labels_of(namespace: str, body: bytes) -> dict[str, str] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        logger.warning("namespace %s from the Kubernetes API is not valid JSON", namespace)
        return None
    metadata = document.get("metadata") if isinstance(document, dict) else None
    labels = metadata.get("labels", {}) if isinstance(metadata, dict) else None
    if not isinstance(labels, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in labels.items()
    ):
        logger.warning("namespace %s from the Kubernetes API has no valid labels", namespace)
        return None
    result = dict(labels)
    result.setdefault(NAMESPACE_NAME_LABEL, namespace)
    return result


def namespace_lookup_for(settings: AdmissionSettings) -> NamespaceLabelLookup:
    """Build the lookup that `settings.namespace_label_source` names.

    Raises:
        AdmissionConfigError: the Kubernetes source was chosen outside a pod.
    """
    if settings.namespace_label_source is NamespaceLabelSource.KUBERNETES:
        return KubernetesNamespaceLabels.in_cluster()
    return StaticNamespaceLabels(settings.namespace_labels)


async def labels_within(
    lookup: NamespaceLabelLookup, namespace: str, timeout: float
) -> Mapping[str, str] | None:
    """Return the labels of `namespace`, or None when the lookup fails or exceeds `timeout`."""
    try:
        return await asyncio.wait_for(lookup.namespace_labels(namespace), timeout=max(timeout, 0))
    except TimeoutError:
        logger.warning("namespace %s: label lookup timed out after %.1f s", namespace, timeout)
        return None
    except RegwardError as exc:
        logger.warning("namespace %s: label lookup failed: %s", namespace, exc)
        return None
