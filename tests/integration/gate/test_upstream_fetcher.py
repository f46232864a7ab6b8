"""The gate's lean manifest fetcher against a real registry, with and without authentication."""

from __future__ import annotations

from pathlib import Path

import pytest

from regward.gate.upstream import DirectManifestFetcher
from tests.support.images import push_image
from tests.support.registry import RunningRegistry, run_registry

pytestmark = pytest.mark.registry

# Any bcrypt-shaped entry turns on Basic auth; no test logs in, so its password does not matter.
HTPASSWD = "ci:$2y$05$7lZ0F8nXTL0PDZKvB8w3Gus6kHfLm0bB4f0C1S2Fv0Ue2o7eX8m2m\n"


async def test_fetches_and_verifies_by_tag_and_digest(registry: RunningRegistry) -> None:
    image = push_image(registry.url, "test/lean", "v1")
    fetcher = DirectManifestFetcher(registry.url)
    try:
        by_tag = await fetcher.get_manifest("test/lean", "v1")
        by_digest = await fetcher.get_manifest("test/lean", image.digest)
        missing = await fetcher.get_manifest("test/lean", "nope")
    finally:
        fetcher.close()

    assert by_tag is not None
    assert by_tag.raw == image.manifest
    assert by_tag.digest == image.digest
    assert by_digest is not None
    assert by_digest.digest == image.digest
    assert missing is None
    assert fetcher.enabled


async def test_switches_off_when_upstream_needs_credentials(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(HTPASSWD)
    with run_registry(tmp_path / "registry", htpasswd=htpasswd) as locked:
        fetcher = DirectManifestFetcher(locked.url)
        result = await fetcher.get_manifest("test/lean", "v1")
        again = await fetcher.get_manifest("test/lean", "v1")
        fetcher.close()

    assert result is None
    assert again is None
    assert not fetcher.enabled


async def test_https_upstream_is_left_to_the_client() -> None:
    fetcher = DirectManifestFetcher("https://registry.example")

    assert not fetcher.enabled
    assert await fetcher.get_manifest("test/lean", "v1") is None
