"""The registry fixture starts a real docker-registry that answers the API version check."""

import urllib.request

import pytest

from tests.support.registry import RunningRegistry


@pytest.mark.registry
def test_registry_answers_v2(registry: RunningRegistry) -> None:
    with urllib.request.urlopen(registry.url + "/v2/", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.registry
def test_push_image_round_trip(registry: RunningRegistry) -> None:
    from tests.support.images import OCI_MANIFEST, push_image

    pushed = push_image(registry.url, "test/app", "v1")
    request = urllib.request.Request(
        registry.url + "/v2/test/app/manifests/v1", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Docker-Content-Digest"] == pushed.digest
        assert response.read() == pushed.manifest
