"""The gate in front of an upstream that misbehaves, and started with a broken policy.

A real registry never serves bytes that contradict their digest, so these upstreams are small
stdlib HTTP servers on 127.0.0.1 that do exactly that.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gate import run_gate

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER_DIGEST = "sha256:" + "b" * 64
BLOB_DIGEST = "sha256:" + "c" * 64


class HostileRegistry(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        media = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if self.path == "/v2/":
            self._send(200, b"{}", {})
        elif self.path == "/v2/test/lying/manifests/v1":
            self._send(200, MANIFEST, {**media, "Docker-Content-Digest": OTHER_DIGEST})
        elif self.path == f"/v2/test/swapped/manifests/{OTHER_DIGEST}":
            self._send(200, MANIFEST, media)
        elif self.path == "/v2/test/huge/manifests/v1":
            self._send(200, b'{"schemaVersion":2,"x":"' + b"x" * (6 * 1024 * 1024) + b'"}', media)
        elif self.path == "/v2/test/garbage/manifests/v1":
            self._send(200, b"<html>not a manifest</html>", media)
        elif self.path == "/v2/test/ok/manifests/v1":
            self._send(200, MANIFEST, {**media, "Docker-Content-Digest": MANIFEST_DIGEST})
        elif self.path == f"/v2/test/ok/blobs/{BLOB_DIGEST}":
            # Promise a megabyte, send a kilobyte, hang up.
            self.send_response(200)
            self.send_header("Content-Length", str(1024 * 1024))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(b"z" * 1024)
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}', {})

    do_HEAD = do_GET  # noqa: N815


@pytest.fixture
def hostile_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def open_policy(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaultAction: allow\nblobs: open\nrules: []\n")
    return policy


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(
    ("path", "expected_status"),
    [
        ("/v2/test/lying/manifests/v1", 502),
        (f"/v2/test/swapped/manifests/{OTHER_DIGEST}", 502),
        ("/v2/test/huge/manifests/v1", 502),
        ("/v2/test/garbage/manifests/v1", 502),
    ],
)
def test_bad_upstream_manifest_never_served(
    tmp_path: Path, hostile_upstream: str, path: str, expected_status: int
) -> None:
    with run_gate(tmp_path, hostile_upstream, open_policy(tmp_path)) as gate:
        status, body = fetch(gate.url + path)

    assert status == expected_status
    assert MANIFEST not in body
    assert json.loads(body)["errors"][0]["code"] == "UNKNOWN"


def test_good_manifest_from_same_upstream_served(tmp_path: Path, hostile_upstream: str) -> None:
    with run_gate(tmp_path, hostile_upstream, open_policy(tmp_path)) as gate:
        status, body = fetch(gate.url + "/v2/test/ok/manifests/v1")

    assert status == 200
    assert body == MANIFEST


def test_truncated_blob_is_not_completed(tmp_path: Path, hostile_upstream: str) -> None:
    with run_gate(tmp_path, hostile_upstream, open_policy(tmp_path)) as gate:
        connection = http.client.HTTPConnection(
            "127.0.0.1", int(gate.host.split(":")[1]), timeout=30
        )
        connection.request("GET", f"/v2/test/ok/blobs/{BLOB_DIGEST}")
        response = connection.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        connection.close()


@pytest.mark.parametrize(
    ("policy_text", "expected"),
    [
        ("defaultAction: maybe\nrules: []\n", "defaultAction"),
        ("rules:\n  - name: a\n    repositories: ['x/**']\n    mdoe: warn\n", "rules[0]"),
        (
            "rules:\n  - name: a\n    repositories: ['x/**']\n    signatures:\n"
            "      authorities:\n        - name: ci\n          key: {path: missing.pub}\n",
            "rules[0].signatures.authorities[0].key",
        ),
        ("rules: [\n", "line"),
    ],
)
def test_serve_rejects_broken_policy(tmp_path: Path, policy_text: str, expected: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "regward.cli.main",
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--policy",
            str(policy),
            "--database",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert str(policy) in result.stderr
    assert expected in result.stderr
