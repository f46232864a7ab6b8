"""`POST /regward/v1/promotions` on a running gate."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from regward.signatures.cosign import signature_tag
from tests.integration.gate.conftest import Keys
from tests.integration.promotion.conftest import sign_on
from tests.integration.promotion.test_cli import VULNERABILITY_POLICY
from tests.integration.promotion.test_promote import fetch_manifest
from tests.integration.scan.conftest import SEARCHOR, feed_dir, python_layer
from tests.support.gate import RunningGate, run_gate
from tests.support.layers import push_layers
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def post(gate: RunningGate, document: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{gate.url}/regward/v1/promotions",
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def gate(tmp_path: Path, registry: RunningRegistry, keys: Keys) -> Iterator[RunningGate]:
    (tmp_path / "cosign.pub").write_bytes(keys.public_pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(VULNERABILITY_POLICY)
    extra = ("--feed", str(feed_dir()), "--feed-interval", "0")
    with run_gate(tmp_path, registry.url, policy, extra_args=extra) as running:
        yield running


def test_gate_promotes_clean_signed_image(
    gate: RunningGate, registry: RunningRegistry, keys: Keys
) -> None:
    digest = push_layers(registry.url, "dev/clean", "v1", [python_layer(("six", "1.16.0"))])
    signature = sign_on(registry, "dev/clean", digest, keys.private_pem)

    status, body = post(gate, {"source": "dev/clean:v1", "destination": "prod/clean:v1"})

    assert status == 201, body
    assert body["promoted"] is True
    assert body["digest"] == digest
    assert body["rule"] == "production"
    copied = body["copied"]
    assert isinstance(copied, dict)
    assert copied["blobs"].get("mounted", 0) >= 2
    assert fetch_manifest(registry.url, "prod/clean", "v1") is not None
    copied_signature = fetch_manifest(registry.url, "prod/clean", signature_tag(digest))
    assert copied_signature is not None
    assert copied_signature[0] == signature


def test_gate_refuses_vulnerable_image(
    gate: RunningGate, registry: RunningRegistry, keys: Keys
) -> None:
    digest = push_layers(registry.url, "dev/search", "v1", [python_layer(SEARCHOR)])
    sign_on(registry, "dev/search", digest, keys.private_pem)

    status, body = post(gate, {"source": "dev/search:v1", "destination": "prod/search:v1"})

    assert status == 403
    assert body["promoted"] is False
    assert "PYSEC-2023-262" in json.dumps(body["reasons"])
    assert fetch_manifest(registry.url, "prod/search", "v1") is None


@pytest.mark.parametrize(
    ("document", "status"),
    [
        ({"source": "dev/app:v1"}, 400),
        ({"source": "dev/app:v1", "destination": "Prod/App"}, 400),
        ({"source": "dev/absent:v1", "destination": "prod/absent:v1"}, 404),
    ],
)
def test_gate_rejects_bad_requests(gate: RunningGate, document: object, status: int) -> None:
    assert post(gate, document)[0] == status
