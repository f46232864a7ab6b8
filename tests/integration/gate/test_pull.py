"""Pull decisions through the running gate, with skopeo, podman and plain HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.gate.conftest import Keys, Signer, write_policy
from tests.support.gate import RunningGate, run_gate
from tests.support.images import OCI_INDEX, OCI_MANIFEST, push_image, push_index
from tests.support.registry import RunningRegistry

ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"

pytestmark = pytest.mark.registry


def get(
    url: str, *, method: str = "GET", accept: str = ACCEPT
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_signed_image_served_by_tag(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    image = push_image(registry.url, "test/app", "v1")
    sign("test/app", image.digest)

    status, headers, body = get(f"{gate.url}/v2/test/app/manifests/v1")

    assert status == 200
    assert body == image.manifest
    assert headers["Docker-Content-Digest"] == image.digest
    assert headers["Content-Type"] == OCI_MANIFEST


def test_unsigned_image_denied_with_rule(gate: RunningGate, registry: RunningRegistry) -> None:
    image = push_image(registry.url, "test/unsigned", "v1")

    status, _, body = get(f"{gate.url}/v2/test/unsigned/manifests/v1")

    assert status == 403
    error = json.loads(body)["errors"][0]
    assert error["code"] == "DENIED"
    assert "ci-signed" in error["message"]
    assert image.digest in error["message"]
    assert "'ci'" in error["message"]
    assert error["detail"]["rule"] == "ci-signed"
    assert error["detail"]["reasons"][0]["code"] == "signature-missing"


def test_head_is_decided_too(gate: RunningGate, registry: RunningRegistry) -> None:
    push_image(registry.url, "test/headonly", "v1")

    status, _, body = get(f"{gate.url}/v2/test/headonly/manifests/v1", method="HEAD")

    assert status == 403
    assert body == b""


def test_wrong_key_signature_denied(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    from regward.signatures.sign import generate_keypair

    other_private, _ = generate_keypair()
    image = push_image(registry.url, "test/wrongkey", "v1")
    sign("test/wrongkey", image.digest, other_private)  # type: ignore[call-arg]

    status, _, body = get(f"{gate.url}/v2/test/wrongkey/manifests/v1")

    assert status == 403
    error = json.loads(body)["errors"][0]
    assert error["detail"]["reasons"][0]["code"] == "signature-invalid"


def test_unmatched_repository_uses_default_deny(
    gate: RunningGate, registry: RunningRegistry
) -> None:
    push_image(registry.url, "other/app", "v1")

    status, _, body = get(f"{gate.url}/v2/other/app/manifests/v1")

    assert status == 403
    assert "defaultAction" in json.loads(body)["errors"][0]["message"]


def test_missing_manifest_is_404(gate: RunningGate, registry: RunningRegistry) -> None:
    status, _, body = get(f"{gate.url}/v2/test/nothing/manifests/v1")

    assert status == 404
    assert json.loads(body)["errors"][0]["code"] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    assert registry.host not in body.decode()


def test_blob_served_only_after_allowed_manifest(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    signed = push_image(registry.url, "test/blobs", "v1")
    sign("test/blobs", signed.digest)
    unsigned = push_image(registry.url, "test/blobs", "v2", {"other.txt": b"unsigned"})

    before, _, _ = get(f"{gate.url}/v2/test/blobs/blobs/{signed.layer_digests[0]}")
    assert before == 403
    assert get(f"{gate.url}/v2/test/blobs/manifests/v1")[0] == 200
    after, _, layer = get(f"{gate.url}/v2/test/blobs/blobs/{signed.layer_digests[0]}")
    denied, _, _ = get(f"{gate.url}/v2/test/blobs/blobs/{unsigned.layer_digests[0]}")

    assert after == 200
    assert len(layer) > 0
    assert denied == 403


def test_pull_by_digest_served_from_verified_bytes(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    image = push_image(registry.url, "test/bydigest", "v1")
    sign("test/bydigest", image.digest)

    first = get(f"{gate.url}/v2/test/bydigest/manifests/{image.digest}")
    second = get(f"{gate.url}/v2/test/bydigest/manifests/{image.digest}")

    assert first[0] == 200
    assert second[0] == 200
    assert second[2] == image.manifest


def test_skopeo_copy_signed_allowed_unsigned_denied(
    gate: RunningGate, registry: RunningRegistry, sign: Signer, tmp_path: Path
) -> None:
    signed = push_image(registry.url, "test/skopeo", "signed")
    sign("test/skopeo", signed.digest)
    push_image(registry.url, "test/skopeo", "unsigned", {"x": b"y"})

    allowed = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{gate.host}/test/skopeo:signed",
        f"oci:{tmp_path / 'out'}:signed",
    )
    denied = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{gate.host}/test/skopeo:unsigned",
        f"oci:{tmp_path / 'out2'}:unsigned",
    )

    assert allowed.returncode == 0, allowed.stderr
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower()
    assert "ci-signed" in denied.stderr


def test_skopeo_inspect_through_gate(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    image = push_image(registry.url, "test/inspect", "v1")
    sign("test/inspect", image.digest)

    result = skopeo("inspect", "--tls-verify=false", f"docker://{gate.host}/test/inspect:v1")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Digest"] == image.digest


@pytest.mark.podman
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_pull_signed_and_unsigned(
    gate: RunningGate, registry: RunningRegistry, sign: Signer, tmp_path: Path
) -> None:
    signed = push_image(registry.url, "test/podman", "signed")
    sign("test/podman", signed.digest)
    push_image(registry.url, "test/podman", "unsigned", {"x": b"z"})
    # podman limits the runroot path to 50 characters, so it lives in a short temporary folder.
    runroot = Path(tempfile.mkdtemp(prefix="rw-run-"))
    storage = [
        "--root",
        str(tmp_path / "root"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
    ]

    def pull(tag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *storage, "pull", "--tls-verify=false", f"{gate.host}/test/podman:{tag}"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    try:
        allowed = pull("signed")
        denied = pull("unsigned")
    finally:
        shutil.rmtree(runroot, ignore_errors=True)

    assert allowed.returncode == 0, allowed.stderr
    assert denied.returncode != 0
    assert "ci-signed" in denied.stderr


def test_warn_mode_allows_with_warning_header(
    tmp_path: Path, registry: RunningRegistry, keys: Keys
) -> None:
    policy = write_policy(tmp_path, keys, mode="warn")
    push_image(registry.url, "test/warn", "v1")
    with run_gate(tmp_path, registry.url, policy) as running:
        status, headers, _ = get(f"{running.url}/v2/test/warn/manifests/v1")

    assert status == 200
    assert "ci-signed" in headers["Warning"]
    assert headers["Warning"].startswith("299 ")


def test_audit_mode_allows_silently(tmp_path: Path, registry: RunningRegistry, keys: Keys) -> None:
    policy = write_policy(tmp_path, keys, mode="audit")
    push_image(registry.url, "test/audit", "v1")
    with run_gate(tmp_path, registry.url, policy) as running:
        status, headers, _ = get(f"{running.url}/v2/test/audit/manifests/v1")

    assert status == 200
    assert "Warning" not in headers


def test_signed_index_covers_child_by_digest(
    gate: RunningGate, registry: RunningRegistry, sign: Signer
) -> None:
    children = [
        push_image(registry.url, "test/multi", None, {"arch": b"amd64"}),
        push_image(registry.url, "test/multi", None, {"arch": b"arm64"}, architecture="arm64"),
    ]
    index_digest, _ = push_index(registry.url, "test/multi", "v1", children)
    sign("test/multi", index_digest)

    child_before = get(f"{gate.url}/v2/test/multi/manifests/{children[1].digest}")[0]
    index_status = get(f"{gate.url}/v2/test/multi/manifests/v1")[0]
    child_after = get(f"{gate.url}/v2/test/multi/manifests/{children[0].digest}")[0]

    assert child_before == 403
    assert index_status == 200
    assert child_after == 200


def test_unsigned_index_passes_when_all_children_signed(
    tmp_path: Path, registry: RunningRegistry, keys: Keys, sign: Signer
) -> None:
    policy = write_policy(tmp_path, keys, index_policy="self-or-children")
    children = [
        push_image(registry.url, "test/kids", None, {"arch": b"amd64"}),
        push_image(registry.url, "test/kids", None, {"arch": b"arm64"}, architecture="arm64"),
    ]
    push_index(registry.url, "test/kids", "v1", children)
    sign("test/kids", children[0].digest)
    with run_gate(tmp_path, registry.url, policy) as running:
        one_signed = get(f"{running.url}/v2/test/kids/manifests/v1")[0]
    sign("test/kids", children[1].digest)
    with run_gate(tmp_path, registry.url, policy) as running:
        all_signed = get(f"{running.url}/v2/test/kids/manifests/v1")[0]

    assert one_signed == 403
    assert all_signed == 200


def test_upstream_down_is_503(tmp_path: Path, keys: Keys) -> None:
    from tests.support.registry import free_port

    policy = write_policy(tmp_path, keys)
    with run_gate(tmp_path, f"http://127.0.0.1:{free_port()}", policy) as running:
        status, _, body = get(f"{running.url}/v2/test/app/manifests/v1")

    assert status == 503
    assert json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    assert "127.0.0.1" not in json.loads(body)["errors"][0]["message"]


def test_signature_added_later_invalidates_cached_denial(
    gate: RunningGate, registry: RunningRegistry, keys: Keys
) -> None:
    import asyncio

    from regward.oci.client import RegistryClient
    from regward.signatures.sign import sign_image

    image = push_image(registry.url, "test/later", "v1")
    assert get(f"{gate.url}/v2/test/later/manifests/v1")[0] == 403

    async def sign_through_gate() -> None:
        async with RegistryClient(gate.url) as client:
            await sign_image(
                client,
                "test/later",
                image.digest,
                keys.private_pem,
                docker_reference=f"{gate.host}/test/later",
            )

    asyncio.run(sign_through_gate())

    assert get(f"{gate.url}/v2/test/later/manifests/v1")[0] == 200
