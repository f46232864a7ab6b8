"""ASGI routing of the admission endpoints: paths, methods, body limits."""

from __future__ import annotations

import json
from typing import Any

from regward.admission.asgi import AdmissionEndpoints
from regward.admission.config import AdmissionSettings
from regward.admission.review import MAX_REVIEW_BYTES
from tests.unit.admission.reviews import FakeDecider, pod_spec, review, workload

IMAGE = "registry.example.com/team/app:v1"


async def call(
    endpoints: AdmissionEndpoints, method: str, path: str, chunks: list[bytes]
) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await endpoints.handle(scope, receive, send)
    start, body = sent
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body["body"])
    return start["status"], headers, json.loads(body["body"])


def endpoints() -> AdmissionEndpoints:
    decider = FakeDecider()
    decider.allow(IMAGE)
    return AdmissionEndpoints(decider, AdmissionSettings())


async def test_validate_dispatched_with_chunked_body() -> None:
    body = review(workload("Pod", "p", "ns", pod_spec({"app": IMAGE})), uid="abc")
    status, _, document = await call(
        endpoints(), "POST", "/admission/validate", [body[:10], body[10:]]
    )
    assert status == 200
    assert document["response"] == {"uid": "abc", "allowed": True}


async def test_mutate_dispatched() -> None:
    body = review(workload("Pod", "p", "ns", pod_spec({"app": IMAGE})))
    status, _, document = await call(endpoints(), "POST", "/admission/mutate", [body])
    assert status == 200
    assert document["response"]["patchType"] == "JSONPatch"


async def test_provider_dispatched() -> None:
    body = json.dumps(
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": [IMAGE]},
        }
    ).encode()
    status, _, document = await call(endpoints(), "POST", "/gatekeeper/provider", [body])
    assert status == 200
    assert document["response"]["items"][0]["value"]["allowed"] is True


async def test_unknown_path_404() -> None:
    status, _, document = await call(endpoints(), "POST", "/admission/other", [b""])
    assert status == 404
    assert document["message"] == "no such endpoint: /admission/other"


async def test_get_is_405() -> None:
    status, headers, document = await call(endpoints(), "GET", "/admission/validate", [b""])
    assert status == 405
    assert headers[b"allow"] == b"POST"
    assert "use POST" in document["message"]


async def test_oversized_body_413() -> None:
    chunk = b"x" * (1024 * 1024)
    chunks = [chunk] * (MAX_REVIEW_BYTES // len(chunk) + 1)
    status, _, document = await call(endpoints(), "POST", "/admission/validate", chunks)
    assert status == 413
    assert document["message"] == f"request body is larger than {MAX_REVIEW_BYTES} bytes"


async def test_malformed_body_400() -> None:
    status, _, document = await call(endpoints(), "POST", "/admission/validate", [b"{}"])
    assert status == 400
    assert document["reason"] == "BadRequest"
