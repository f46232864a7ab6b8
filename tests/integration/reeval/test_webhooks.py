"""Webhook delivery to a receiver the test starts on 127.0.0.1: signature, retries, dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from regward.notify import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    DeliveryState,
    Event,
    EventType,
    FindingSummary,
    NotificationSettings,
    NotificationStore,
    Notifier,
    WebhookDispatcher,
    WebhookTarget,
    verify_signature,
)
from regward.store import Store
from tests.integration.oci.servers import serve

SECRET = b"test-webhook-secret"


@dataclass
class Receiver:
    """Return 503 to the first `failures` requests and 204 after them, keeping each request."""

    failures: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        self.times.append(time.monotonic())
        if len(self.received) <= self.failures:
            return web.Response(status=503)
        return web.Response(status=204)

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/hook", self.handle)
        return application


def event() -> Event:
    return Event(
        type=EventType.VULNERABILITY_DENIED,
        repository="prod/app",
        digest="sha256:" + "a" * 64,
        tags=("v1", "stable"),
        rule="production",
        findings=(
            FindingSummary(
                "PYSEC-2023-262", "critical", "searchor", "2.4.0", ("CVE-2023-43364",), ("2.4.2",)
            ),
        ),
        reasons=("1 finding at or above high",),
        policy_revision="p" * 64,
        feed_revision="f" * 64,
    )


def settings(url: str, *, max_attempts: int = 3) -> NotificationSettings:
    return NotificationSettings(
        webhooks=(WebhookTarget("receiver", url, SECRET),),
        max_attempts=max_attempts,
        backoff=0.1,
        max_backoff=0.2,
        timeout=2.0,
        poll_interval=0.05,
    )


async def deliver(
    store: Store, receiver: Receiver, *, max_attempts: int = 3, expect: DeliveryState
) -> NotificationStore:
    notifications = NotificationStore(store.engine)
    async with serve(receiver.app()) as url:
        configured = settings(f"{url}/hook", max_attempts=max_attempts)
        dispatcher = WebhookDispatcher(notifications, configured)
        await dispatcher.start()
        try:
            Notifier(notifications, configured, dispatcher).publish(event())
            deadline = time.monotonic() + 10
            while not notifications.deliveries(state=expect):
                assert time.monotonic() < deadline, notifications.deliveries()
                await asyncio.sleep(0.05)
        finally:
            await dispatcher.stop()
    return notifications


def test_delivery_is_signed(store: Store) -> None:
    receiver = Receiver()

    asyncio.run(deliver(store, receiver, expect=DeliveryState.DELIVERED))

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_signature(b"another secret", body, headers[SIGNATURE_HEADER])
    assert headers["Content-Type"] == "application/json"
    assert headers[EVENT_HEADER] == "vulnerability.denied"
    document = json.loads(body)
    assert headers[DELIVERY_HEADER] == document["id"]
    assert document["digest"] == "sha256:" + "a" * 64
    assert document["tags"] == ["v1", "stable"]
    assert document["repository"] == "prod/app"
    assert document["rule"] == "production"
    assert document["findingIds"] == ["PYSEC-2023-262"]
    assert document["findings"][0]["fixed"] == ["2.4.2"]


def test_failed_attempts_are_retried(store: Store) -> None:
    receiver = Receiver(failures=2)

    notifications = asyncio.run(deliver(store, receiver, expect=DeliveryState.DELIVERED))

    assert len(receiver.received) == 3
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1
    first_wait = receiver.times[1] - receiver.times[0]
    second_wait = receiver.times[2] - receiver.times[1]
    assert first_wait >= 0.09
    assert second_wait >= 0.19
    (delivered,) = notifications.deliveries(state=DeliveryState.DELIVERED)
    assert delivered.attempts == 3
    assert delivered.last_status == 204


def test_last_failure_leaves_a_dead_letter(store: Store) -> None:
    receiver = Receiver(failures=100)

    notifications = asyncio.run(deliver(store, receiver, max_attempts=3, expect=DeliveryState.DEAD))

    assert len(receiver.received) == 3
    (dead,) = notifications.deliveries(state=DeliveryState.DEAD)
    assert dead.webhook == "receiver"
    assert dead.attempts == 3
    assert dead.last_status == 503
    assert dead.last_error == "HTTP 503"
    assert dead.finished_at is not None
    assert notifications.deliveries(state=DeliveryState.PENDING) == []
