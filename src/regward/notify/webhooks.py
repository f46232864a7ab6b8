"""Signed webhook POSTs with retries, off the request path.

Each POST carries the event's JSON document and these headers:

- `Content-Type: application/json`
- `X-Regward-Event`: the event type, such as `vulnerability.denied`
- `X-Regward-Delivery`: the event id, the same on every retry, for receivers to drop duplicates
- `X-Regward-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body bytes, keyed with the
  receiver's secret. Receivers compute the same HMAC and compare in constant time
  (`verify_signature`).

A 2xx response completes the delivery. Any other response (a redirect included), a transport
error or a timeout is a failed attempt. The first retry waits `backoff`, each later one twice as
long up to `maxBackoff`, and after `maxAttempts` attempts the delivery is kept as a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from regward import __version__
from regward.notify.config import NotificationSettings, WebhookTarget
from regward.notify.interface import Event, NotifyError
from regward.notify.records import Delivery, NotificationStore

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Regward-Signature"
"""Header with `sha256=<hex HMAC-SHA256 of the body>`."""
EVENT_HEADER = "X-Regward-Event"
DELIVERY_HEADER = "X-Regward-Delivery"
USER_AGENT = f"regward/{__version__}"
_RESPONSE_BODY_LIMIT = 4096


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """Return the compact JSON bytes that are POSTed and signed."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign_body(secret: bytes, body: bytes) -> str:
    """Return the `X-Regward-Signature` value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Tell whether `header` is the signature of `body` under `secret`, in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign_body(secret, body), header.strip())


class Notifier:
    """Records events for the configured receivers and wakes the dispatcher."""

    def __init__(
        self,
        store: NotificationStore,
        settings: NotificationSettings,
        dispatcher: WebhookDispatcher | None = None,
    ) -> None:
        """Create a notifier; `dispatcher`, if given, is woken after each event."""
        self.store = store
        self.settings = settings
        self.dispatcher = dispatcher

    def publish(self, event: Event) -> int:
        """Record `event` with a delivery for each receiver that takes its type; blocks.

        Events are recorded even without receivers, as the history of decisions that changed.

        Returns:
            The number of deliveries created.

        Raises:
            NotifyError: the database failed.
        """
        receivers = [hook.name for hook in self.settings.webhooks if event.type in hook.events]
        self.store.record(event, receivers)
        logger.info(
            "event %s: %s@%s, findings %s, %d webhook deliveries",
            event.type,
            event.repository,
            event.digest,
            ", ".join(event.finding_ids[:10]) or "none",
            len(receivers),
        )
        if receivers and self.dispatcher is not None:
            self.dispatcher.wake()
        return len(receivers)


class WebhookDispatcher:
    """Delivers pending webhook deliveries from an asyncio task.

    Database calls run in worker threads and POSTs are asynchronous with a `settings.timeout`
    bound, so neither blocks the event loop that serves registry requests.
    """

    def __init__(
        self,
        store: NotificationStore,
        settings: NotificationSettings,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Create a dispatcher; `session` is owned by the caller when given."""
        self.store = store
        self.settings = settings
        self._session = session
        self._owns_session = session is None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0
        """Deliveries that succeeded since start."""
        self.failed_attempts = 0
        """Attempts that failed since start, retried or not."""
        self.dead = 0
        """Deliveries that became dead letters since start."""

    async def start(self) -> None:
        """Start the delivery task on the running loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="regward-webhooks")
        logger.info("webhook dispatcher started with %d receivers", len(self.settings.webhooks))

    async def stop(self) -> None:
        """Stop the task; leased deliveries are attempted again after their lease."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        logger.info("webhook dispatcher stopped")

    def wake(self) -> None:
        """Look for due deliveries now; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except NotifyError:
                logger.exception("webhook delivery pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due now; return how many were attempted.

        Raises:
            NotifyError: the database failed.
        """
        attempted = 0
        limit = self.settings.concurrency * 4
        # The lease outlasts one POST with its timeout and the bookkeeping around it.
        lease = self.settings.timeout * 2 + 30
        while True:
            due = await asyncio.to_thread(self.store.claim_due, limit=limit, lease=lease)
            if not due:
                return attempted
            await asyncio.gather(*(self._attempt_bounded(delivery) for delivery in due))
            attempted += len(due)

    async def _attempt_bounded(self, delivery: Delivery) -> None:
        async with self._slots:
            await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        target = self.settings.target(delivery.webhook)
        attempt = delivery.attempts + 1
        if target is None:
            missing = f"webhook {delivery.webhook} is no longer configured"
            await asyncio.to_thread(
                self.store.mark_failed, delivery.id, status=None, error=missing, retry_in=None
            )
            self.dead += 1
            logger.error("dead letter for event %s: %s", delivery.event_id, missing)
            return

        status, error = await self._post(target, delivery)
        if error is None:
            assert status is not None
            await asyncio.to_thread(self.store.mark_delivered, delivery.id, status)
            self.delivered += 1
            logger.info(
                "delivered event %s to webhook %s (attempt %d, HTTP %d)",
                delivery.event_id,
                target.name,
                attempt,
                status,
            )
            return

        self.failed_attempts += 1
        if attempt >= self.settings.max_attempts:
            await asyncio.to_thread(
                self.store.mark_failed, delivery.id, status=status, error=error, retry_in=None
            )
            self.dead += 1
            logger.error(
                "dead letter for event %s to webhook %s after %d attempts: %s",
                delivery.event_id,
                target.name,
                attempt,
                error,
            )
            return
        delay = self.settings.retry_delay(attempt)
        await asyncio.to_thread(
            self.store.mark_failed, delivery.id, status=status, error=error, retry_in=delay
        )
        logger.warning(
            "webhook %s failed for event %s (attempt %d of %d): %s; retrying in %.1f s",
            target.name,
            delivery.event_id,
            attempt,
            self.settings.max_attempts,
            error,
            delay,
        )

    async def _post(
        self, target: WebhookTarget, delivery: Delivery
    ) -> tuple[int | None, str | None]:
        """POST one delivery; return (status, None) on success or (status or None, error)."""
        assert self._session is not None
        body = encode_body(delivery.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: delivery.event_type,
            DELIVERY_HEADER: delivery.event_id,
            SIGNATURE_HEADER: sign_body(target.secret, body),
        }
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with self._session.post(
                target.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                # Read a little of the body so the connection can be reused; the rest is ignored.
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.content.read(_RESPONSE_BODY_LIMIT)
                status = response.status
        except TimeoutError:
            return None, f"timed out after {self.settings.timeout:g} s"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}".replace(target.url, f"<{target.name}>")
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"
