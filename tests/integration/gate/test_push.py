"""Push controls through the running gate: tag immutability, accessory tags, deletes, races."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.gate import RunningGate
from tests.support.images import OCI_MANIFEST, push_image, upload_blob
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def put_manifest(base_url: str, repository: str, reference: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{base_url}/v2/{repository}/manifests/{reference}",
        method="PUT",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def delete(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def second_manifest(registry: RunningRegistry, repository: str, marker: bytes) -> bytes:
    """Push blobs for another image (untagged) and return its manifest bytes."""
    pushed = push_image(registry.url, repository, None, {"marker": marker})
    return pushed.manifest


def test_moving_immutable_tag_denied(gate: RunningGate, registry: RunningRegistry) -> None:
    first = push_image(registry.url, "test/imm", None, {"a": b"1"})
    other = second_manifest(registry, "test/imm", b"2")

    created, _ = put_manifest(gate.url, "test/imm", "v1", first.manifest)
    moved, body = put_manifest(gate.url, "test/imm", "v1", other)

    assert created == 201
    assert moved == 403
    error = json.loads(body)["errors"][0]
    assert error["code"] == "DENIED"
    assert "immutable" in error["message"]
    assert "ci-signed" in error["message"]


def test_repush_same_digest_allowed(gate: RunningGate, registry: RunningRegistry) -> None:
    image = push_image(registry.url, "test/same", None, {"a": b"1"})

    first, _ = put_manifest(gate.url, "test/same", "v1", image.manifest)
    again, _ = put_manifest(gate.url, "test/same", "v1", image.manifest)

    assert first == 201
    assert again == 201


def test_excluded_tag_can_move(gate: RunningGate, registry: RunningRegistry) -> None:
    first = push_image(registry.url, "test/latest", None, {"a": b"1"})
    other = second_manifest(registry, "test/latest", b"2")

    assert put_manifest(gate.url, "test/latest", "latest", first.manifest)[0] == 201
    assert put_manifest(gate.url, "test/latest", "latest", other)[0] == 201


def test_tag_pushed_directly_upstream_is_still_frozen(
    gate: RunningGate, registry: RunningRegistry
) -> None:
    push_image(registry.url, "test/direct", "v1", {"a": b"1"})
    other = second_manifest(registry, "test/direct", b"2")

    status, _ = put_manifest(gate.url, "test/direct", "v1", other)

    assert status == 403


def test_accessory_tags_never_frozen(gate: RunningGate, registry: RunningRegistry) -> None:
    image = push_image(registry.url, "test/acc", "v1")
    tag = image.digest.replace(":", "-") + ".sig"
    first = second_manifest(registry, "test/acc", b"sig-1")
    second = second_manifest(registry, "test/acc", b"sig-2")

    assert put_manifest(gate.url, "test/acc", tag, first)[0] == 201
    assert put_manifest(gate.url, "test/acc", tag, second)[0] == 201


def test_delete_of_manifest_under_immutable_tag_denied(
    gate: RunningGate, registry: RunningRegistry
) -> None:
    image = push_image(registry.url, "test/del", "v1")
    loose = push_image(registry.url, "test/del", "latest", {"b": b"2"})

    frozen_status, frozen_body = delete(f"{gate.url}/v2/test/del/manifests/{image.digest}")
    loose_status, _ = delete(f"{gate.url}/v2/test/del/manifests/{loose.digest}")

    assert frozen_status == 403
    assert "v1" in json.loads(frozen_body)["errors"][0]["message"]
    assert loose_status == 202


def test_concurrent_pushes_exactly_one_wins(gate: RunningGate, registry: RunningRegistry) -> None:
    manifests = [second_manifest(registry, "test/race", f"m{i}".encode()) for i in range(6)]
    results: list[int] = []
    barrier = threading.Barrier(len(manifests))

    def push(body: bytes) -> None:
        barrier.wait()
        results.append(put_manifest(gate.url, "test/race", "v1", body)[0])

    threads = [threading.Thread(target=push, args=(body,)) for body in manifests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results).count(201) == 1
    assert sorted(results).count(403) == len(manifests) - 1


def test_digest_mismatch_on_put_rejected(gate: RunningGate, registry: RunningRegistry) -> None:
    image = push_image(registry.url, "test/mismatch", None)
    wrong = "sha256:" + "0" * 64

    status, body = put_manifest(gate.url, "test/mismatch", wrong, image.manifest)

    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"


def test_oversized_manifest_put_rejected(gate: RunningGate) -> None:
    body = b'{"schemaVersion": 2, "padding": "' + b"x" * (5 * 1024 * 1024) + b'"}'

    status, response = put_manifest(gate.url, "test/big", "v1", body)

    assert status == 413
    assert json.loads(response)["errors"][0]["code"] == "SIZE_INVALID"


def test_skopeo_push_through_gate(
    gate: RunningGate, registry: RunningRegistry, tmp_path: Path
) -> None:
    from regward.demo import write_oci_layout

    layout = tmp_path / "layout"
    digest = write_oci_layout(layout, "v1", {"hello": b"pushed through the gate"})

    pushed = subprocess.run(
        [
            "skopeo",
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            f"docker://{gate.host}/test/pushed:v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert pushed.returncode == 0, pushed.stderr
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{registry.url}/v2/test/pushed/manifests/v1", headers={"Accept": OCI_MANIFEST}
        ),
        timeout=10,
    ) as response:
        assert response.headers["Docker-Content-Digest"] == digest


def test_blob_upload_passes_through(gate: RunningGate, registry: RunningRegistry) -> None:
    digest = upload_blob(gate.url, "test/upload", b"some blob content" * 1000)

    with urllib.request.urlopen(
        f"{registry.url}/v2/test/upload/blobs/{digest}", timeout=10
    ) as response:
        assert response.read() == b"some blob content" * 1000
