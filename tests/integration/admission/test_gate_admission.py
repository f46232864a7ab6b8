"""The admission endpoints of a running `regward serve` in front of a real docker-registry.

Reviews are POSTed as the API server sends them, for images pushed to the registry and signed
(or not) with regward's cosign-compatible signer. The gate decides them with the same policy,
cache and upstream as registry pulls.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regward.cli.main import main
from regward.oci.client import RegistryClient
from regward.signatures.sign import generate_keypair, sign_image
from tests.support.gate import RunningGate, run_gate
from tests.support.images import PushedImage, push_image
from tests.support.registry import RunningRegistry
from tests.unit.admission.reviews import apply_patch, patch_of, pod_spec, review, workload

pytestmark = pytest.mark.registry

POLICY = """\
defaultAction: deny
rules:
  - name: ci-signed
    repositories: ["test/**"]
    signatures:
      authorities:
        - name: ci
          key: {path: cosign.pub}
"""


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@dataclass
class Cluster:
    """A registry with a signed and an unsigned image, and the gate in front of it."""

    registry: RunningRegistry
    gate: RunningGate
    database: str
    signed: PushedImage
    unsigned: PushedImage

    def reference(self, repository: str, tag: str) -> str:
        return f"{self.registry.host}/{repository}:{tag}"

    def validate(self, body: bytes) -> tuple[int, dict[str, Any]]:
        status, document = post(f"{self.gate.url}/admission/validate", body)
        if status == 404:
            pytest.skip("the gate does not serve /admission/validate")
        return status, document

    def mutate(self, body: bytes) -> tuple[int, dict[str, Any]]:
        return post(f"{self.gate.url}/admission/mutate", body)


def write_config(directory: Path, allowed: list[str], extra: str = "") -> Path:
    config = directory / "config.yaml"
    registries = "".join(f"    - {host}\n" for host in allowed)
    config.write_text(f"admission:\n  allowedRegistries:\n{registries}{extra}")
    return config


@pytest.fixture
def cluster(registry: RunningRegistry, tmp_path: Path) -> Iterator[Cluster]:
    private_pem, public_pem = generate_keypair()
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    signed = push_image(registry.url, "test/app", "v1")
    unsigned = push_image(registry.url, "test/unsigned", "v1", {"other.txt": b"unsigned"})

    async def sign() -> None:
        async with RegistryClient(registry.url) as client:
            await sign_image(
                client,
                "test/app",
                signed.digest,
                private_pem,
                docker_reference=f"{registry.host}/test/app",
            )

    asyncio.run(sign())
    database = f"sqlite:///{tmp_path / 'gate.db'}"
    config = write_config(tmp_path, [registry.host])
    with run_gate(tmp_path, registry.url, policy, database=database, config=config) as gate:
        yield Cluster(registry, gate, database, signed, unsigned)


def test_unsigned_pod_denied_with_image_and_reason(cluster: Cluster) -> None:
    image = cluster.reference("test/unsigned", "v1")
    body = review(workload("Pod", "web", "shop", pod_spec({"app": image})), uid="pod-1")

    status, document = cluster.validate(body)

    assert status == 200
    response = document["response"]
    assert response["uid"] == "pod-1"
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert f'container "app" image {image}' in message
    assert "ci-signed" in message
    assert cluster.unsigned.digest in message


def test_unsigned_deployment_denied(cluster: Cluster) -> None:
    image = cluster.reference("test/unsigned", "v1")
    spec = pod_spec({"app": cluster.reference("test/app", "v1")}, init={"setup": image})
    status, document = cluster.validate(review(workload("Deployment", "web", "shop", spec)))
    assert status == 200
    assert document["response"]["allowed"] is False
    assert f'initContainer "setup" image {image}' in document["response"]["status"]["message"]


def test_signed_pod_allowed_and_pinned(cluster: Cluster) -> None:
    image = cluster.reference("test/app", "v1")
    pod = workload("Pod", "web", "shop", pod_spec({"app": image}))

    status, document = cluster.validate(review(pod))
    assert status == 200
    assert document["response"]["allowed"] is True

    status, document = cluster.mutate(review(pod, uid="m-1"))
    assert status == 200
    assert document["response"]["uid"] == "m-1"
    pinned = f"{cluster.registry.host}/test/app@{cluster.signed.digest}"
    patched = apply_patch(pod, patch_of(document["response"]))
    assert patched["spec"]["containers"][0]["image"] == pinned

    status, document = cluster.validate(review(patched))
    assert document["response"]["allowed"] is True


def test_signed_deployment_allowed_and_recorded(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    image = f"{cluster.registry.host}/test/app@{cluster.signed.digest}"
    deployment = workload("Deployment", "web", "shop", pod_spec({"app": image}))

    status, document = cluster.validate(review(deployment, dry_run=True))
    assert document["response"]["allowed"] is True
    status, document = cluster.validate(review(deployment, uid="deploy-1"))
    assert status == 200
    assert document["response"]["allowed"] is True

    deadline = time.monotonic() + 10
    while True:
        assert main(["deployments", "--at", "now", "--database", cluster.database]) == 0
        lines = capsys.readouterr().out.splitlines()
        if len(lines) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lines[1].split()[:6] == [
        "shop",
        "Deployment",
        "web",
        "app",
        image,
        cluster.signed.digest,
    ]


def test_registry_outside_allowed_list_denied(cluster: Cluster) -> None:
    status, document = cluster.validate(
        review(workload("Pod", "web", "shop", pod_spec({"hub": "nginx:1.25"})))
    )
    assert status == 200
    assert document["response"]["allowed"] is False
    assert (
        "registry docker.io is not in admission.allowedRegistries"
        in (document["response"]["status"]["message"])
    )


def test_gatekeeper_provider_answers_list(cluster: Cluster) -> None:
    signed = cluster.reference("test/app", "v1")
    unsigned = cluster.reference("test/unsigned", "v1")
    body = json.dumps(
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": [signed, unsigned, "nginx:1.25"]},
        }
    ).encode()
    status, document = post(f"{cluster.gate.url}/gatekeeper/provider", body)
    if status == 404:
        pytest.skip("the gate does not serve /gatekeeper/provider")
    assert status == 200
    items = {item["key"]: item for item in document["response"]["items"]}
    assert items[signed]["value"]["allowed"] is True
    assert items[signed]["value"]["digest"] == cluster.signed.digest
    assert items[unsigned]["value"]["allowed"] is False
    assert items["nginx:1.25"]["value"]["allowed"] is False


def test_malformed_review_gets_400(cluster: Cluster) -> None:
    status, document = cluster.validate(b'{"apiVersion": "admission.k8s.io/v1"}')
    assert status == 400
    assert "invalid AdmissionReview" in document["message"]


class SilentUpstream:
    """A TCP server on loopback that accepts connections and never responds."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()


def test_slow_upstream_denied_within_budget(tmp_path: Path) -> None:
    _, public_pem = generate_keypair()
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    upstream = SilentUpstream()
    host = f"127.0.0.1:{upstream.port}"
    config = write_config(tmp_path, [host], "  budgetSeconds: 1.5\n")
    try:
        with run_gate(tmp_path, f"http://{host}", policy, config=config) as gate:
            body = review(workload("Pod", "web", "shop", pod_spec({"app": f"{host}/test/app:v1"})))
            started = time.monotonic()
            status, document = post(f"{gate.url}/admission/validate", body)
            elapsed = time.monotonic() - started
    finally:
        upstream.close()
    if status == 404:
        pytest.skip("the gate does not serve /admission/validate")
    assert status == 200
    assert elapsed < 4.0
    response = document["response"]
    assert response["allowed"] is False
    assert "timed out after 1.5 s waiting for the decision" in response["status"]["message"]
