"""`regward serve --feed DIR --feed-interval 2s`: decisions follow the feed within seconds.

An image that the gate allowed is denied soon after a record that affects it appears in the feed
directory, and allowed again once the record is withdrawn. Each change reaches a webhook
receiver that the test runs on 127.0.0.1, with a verified HMAC signature.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from regward.notify import SIGNATURE_HEADER, verify_signature
from tests.conftest import asset
from tests.integration.scan.conftest import SEARCHOR, python_layer
from tests.integration.scan.test_gate import pull
from tests.support.gate import RunningGate, run_gate
from tests.support.layers import push_layers
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

SECRET = "gate-webhook-secret"

POLICY = """\
defaultAction: deny
rules:
  - name: production
    repositories: ["team/**"]
    vulnerabilities:
      denyAtOrAbove: high
"""


class Receiver:
    """Webhook receiver on a loopback port; keeps each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def wait_for_status(gate: RunningGate, repository: str, tag: str, status: int) -> float:
    """Pull until the gate returns `status`, and return the seconds it took."""
    started = time.monotonic()
    while True:
        code, _ = pull(gate, repository, tag)
        if code == status:
            return time.monotonic() - started
        assert time.monotonic() - started < 30, gate.log_text()[-3000:]
        time.sleep(0.25)


def wait_for_events(receiver: Receiver, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, receiver.events()
        time.sleep(0.1)
    return receiver.events()


def test_feed_change_denies_then_allows(
    tmp_path: Path, registry: RunningRegistry, receiver: Receiver, database_url: str
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    shutil.copy(asset("vulns-feed/PYSEC-2018-28.json"), feed)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "hook.secret").write_text(SECRET)
    config = tmp_path / "gate.yaml"
    config.write_text(
        "notifications:\n"
        "  webhooks:\n"
        f"    - url: {receiver.url}\n"
        "      secretFile: hook.secret\n"
        "  backoff: 100ms\n"
    )
    digest = push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    extra = ("--feed", str(feed), "--feed-interval", "2s")

    with run_gate(
        tmp_path, registry.url, policy, database=database_url, config=config, extra_args=extra
    ) as gate:
        assert pull(gate, "team/search", "v1")[0] == 200
        # The pull recorded the tag; give the portfolio writer time to store it.
        time.sleep(1.0)

        shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed)
        denied_after = wait_for_status(gate, "team/search", "v1", 403)
        code, error = pull(gate, "team/search", "v1")
        denied_events = wait_for_events(receiver, 1)

        record = feed / "PYSEC-2023-262.json"
        document = json.loads(record.read_text())
        document["withdrawn"] = "2026-12-01T00:00:00Z"
        record.write_text(json.dumps(document))
        allowed_after = wait_for_status(gate, "team/search", "v1", 200)
        events = wait_for_events(receiver, 2)

    assert denied_after < 10
    assert allowed_after < 10
    assert code == 403
    assert "PYSEC-2023-262" in str(error["message"])
    assert denied_events[0]["type"] == "vulnerability.denied"
    assert denied_events[0]["digest"] == digest
    assert denied_events[0]["repository"] == "team/search"
    assert denied_events[0]["tags"] == ["v1"]
    assert denied_events[0]["rule"] == "production"
    assert denied_events[0]["findingIds"] == ["PYSEC-2023-262"]
    assert events[1]["type"] == "vulnerability.cleared"
    for headers, body in receiver.requests:
        assert verify_signature(SECRET.encode(), body, headers[SIGNATURE_HEADER])


def test_stale_result_is_matched_again(
    tmp_path: Path, registry: RunningRegistry, database_url: str
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    shutil.copy(asset("vulns-feed/PYSEC-2018-28.json"), feed)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "      maxScanAge: 1s\n")
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    # No scheduler: only the pull-time freshness check keeps the result current.
    extra = ("--feed", str(feed), "--feed-interval", "0")

    with run_gate(tmp_path, registry.url, policy, database=database_url, extra_args=extra) as gate:
        assert pull(gate, "team/search", "v1")[0] == 200
        time.sleep(1.5)
        second = pull(gate, "team/search", "v1")[0]
        log = gate.log_text()

    assert second == 200
    assert "re-matched the stale scan of team/search@" in log


def test_stale_result_over_budget_is_denied(
    tmp_path: Path, registry: RunningRegistry, database_url: str
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    shutil.copy(asset("vulns-feed/PYSEC-2018-28.json"), feed)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "      maxScanAge: 2s\n")
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    extra = ("--feed", str(feed), "--feed-interval", "0", "--rescan-budget", "1ms")

    with run_gate(tmp_path, registry.url, policy, database=database_url, extra_args=extra) as gate:
        first = pull(gate, "team/search", "v1")[0]
        time.sleep(2.5)
        code, error = pull(gate, "team/search", "v1")
        # The match goes on in the background and refreshes the result for the next pull.
        allowed_after = wait_for_status(gate, "team/search", "v1", 200)

    assert first == 200
    assert code == 403
    assert "the vulnerability scan result is stale" in str(error["message"])
    assert "did not finish within 0.001 s" in str(error["message"])
    assert allowed_after < 2
