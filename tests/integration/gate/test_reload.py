"""The running gate picks up policy edits, and keeps the old policy when an edit is broken."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.gate.conftest import Keys, Signer, write_policy
from tests.support.gate import RunningGate, run_gate
from tests.support.images import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

DENY_ALL = "defaultAction: deny\nrules: []\n"
ALLOW_ALL = "defaultAction: allow\nrules: []\n"


def status_of(url: str) -> int:
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for_status(url: str, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    status = status_of(url)
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        status = status_of(url)
    return status


def test_policy_edit_applies_and_broken_edit_is_ignored(
    tmp_path: Path, registry: RunningRegistry, keys: Keys
) -> None:
    push_image(registry.url, "test/reload", "v1")
    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_ALL)
    config = tmp_path / "gate.yaml"
    config.write_text("policyReloadSeconds: 0.2\n")
    url_path = "/v2/test/reload/manifests/v1"
    with run_gate(tmp_path, registry.url, policy, config=config) as gate:
        gate_: RunningGate = gate
        before = status_of(gate_.url + url_path)
        policy.write_text(ALLOW_ALL)
        after_edit = wait_for_status(gate_.url + url_path, 200)
        policy.write_text("defaultAction: [broken\n")
        time.sleep(1.0)
        after_broken = status_of(gate_.url + url_path)
        log = gate_.log_text()

    assert before == 403
    assert after_edit == 200
    assert after_broken == 200
    assert "reloaded" in log
    assert "does not load" in log


def test_replaced_key_file_applies(
    tmp_path: Path, registry: RunningRegistry, keys: Keys, sign: Signer
) -> None:
    from regward.signatures.sign import generate_keypair

    image = push_image(registry.url, "test/rotated", "v1")
    sign("test/rotated", image.digest)
    policy = write_policy(tmp_path, keys)
    config = tmp_path / "gate.yaml"
    config.write_text("policyReloadSeconds: 0.2\n")
    url = "/v2/test/rotated/manifests/v1"
    with run_gate(tmp_path, registry.url, policy, config=config) as gate:
        before = status_of(gate.url + url)
        _, other_public = generate_keypair()
        (tmp_path / "cosign.pub").write_bytes(other_public)
        after = wait_for_status(gate.url + url, 403)

    assert before == 200
    assert after == 403
