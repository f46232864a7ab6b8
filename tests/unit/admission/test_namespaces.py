"""Namespace labels from the configuration and from a Kubernetes API server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from regward.admission.config import parse_admission_settings
from regward.admission.interface import AdmissionConfigError
from regward.admission.namespaces import (
    KubernetesNamespaceLabels,
    StaticNamespaceLabels,
    namespace_lookup_for,
)


async def test_static_labels_add_name_label() -> None:
    lookup = StaticNamespaceLabels({"payments": {"env": "prod"}})
    assert await lookup.namespace_labels("payments") == {
        "env": "prod",
        "kubernetes.io/metadata.name": "payments",
    }
    assert await lookup.namespace_labels("dev") == {"kubernetes.io/metadata.name": "dev"}


class FakeApiServer:
    """Serves GET /api/v1/namespaces/{name} like kube-apiserver, and counts requests."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.status = 200
        self.body: bytes | None = None

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append((name, request.headers.get("Authorization")))
        if self.body is not None:
            return web.Response(body=self.body, content_type="application/json")
        if self.status != 200 or name not in self.namespaces:
            status = self.status if self.status != 200 else 404
            return web.json_response({"kind": "Status", "code": status}, status=status)
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": self.namespaces[name]},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )


@pytest.fixture
async def api_server() -> AsyncIterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{name}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("test-token\n")
    return path


async def test_kubernetes_labels_read_and_cached(
    api_server: tuple[FakeApiServer, str], token_file: Path
) -> None:
    fake, url = api_server
    fake.namespaces["payments"] = {"env": "prod", "kubernetes.io/metadata.name": "payments"}
    now = [0.0]
    lookup = KubernetesNamespaceLabels(url, token_file, None, ttl=30, clock=lambda: now[0])
    try:
        assert await lookup.namespace_labels("payments") == fake.namespaces["payments"]
        assert await lookup.namespace_labels("payments") == fake.namespaces["payments"]
        assert fake.requests == [("payments", "Bearer test-token")]
        now[0] = 31.0
        token_file.write_text("rotated")
        await lookup.namespace_labels("payments")
        assert fake.requests[-1] == ("payments", "Bearer rotated")
    finally:
        await lookup.close()


async def test_kubernetes_missing_namespace_is_unknown(
    api_server: tuple[FakeApiServer, str], token_file: Path
) -> None:
    fake, url = api_server
    lookup = KubernetesNamespaceLabels(url, token_file, None)
    try:
        assert await lookup.namespace_labels("ghost") is None
        fake.status = 403
        assert await lookup.namespace_labels("other") is None
        fake.status = 200
        fake.body = b"{broken"
        assert await lookup.namespace_labels("third") is None
        fake.body = json.dumps({"metadata": {"labels": {"a": 1}}}).encode()
        assert await lookup.namespace_labels("fourth") is None
    finally:
        await lookup.close()


async def test_kubernetes_invalid_name_not_requested(
    api_server: tuple[FakeApiServer, str], token_file: Path
) -> None:
    fake, url = api_server
    lookup = KubernetesNamespaceLabels(url, token_file, None)
    try:
        assert await lookup.namespace_labels("../../secrets") is None
        assert fake.requests == []
    finally:
        await lookup.close()


async def test_kubernetes_unreachable_is_unknown(token_file: Path) -> None:
    from tests.support.registry import free_port

    lookup = KubernetesNamespaceLabels(
        f"http://127.0.0.1:{free_port()}", token_file, None, timeout=1
    )
    try:
        assert await lookup.namespace_labels("payments") is None
    finally:
        await lookup.close()


def test_lookup_for_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    static = namespace_lookup_for(parse_admission_settings({"namespaceLabels": {"a": {"b": "c"}}}))
    assert isinstance(static, StaticNamespaceLabels)
    settings = parse_admission_settings({"namespaceLabelSource": "kubernetes"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(AdmissionConfigError, match="KUBERNETES_SERVICE_HOST is not set"):
        namespace_lookup_for(settings)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    lookup = namespace_lookup_for(settings)
    assert isinstance(lookup, KubernetesNamespaceLabels)
    assert lookup.api_url == "https://10.96.0.1:443"
