"""Re-evaluation inside `regward serve`: the scheduler task, portfolio recording and webhooks.

`GateReevaluation` owns, for one gate process:

- the scheduler, run as an asyncio task that ticks in a worker thread, over the gate's scan
  tables (`ScanPortfolio`) with its jobs in the gate's database;
- the feed the gate's scanner matches against (`ScheduledFeeds`), which is the scheduler's, so
  the gate and the scheduler always agree on the feed revision;
- a background writer of portfolio membership (which digests were pulled or pushed under
  which tags), so the request path only appends to a queue;
- webhook delivery, and the listener that drops cached decisions of digests whose findings
  changed and publishes events for tagged digests whose decision changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from regward.notify import (
    NotificationStore,
    Notifier,
    WebhookDispatcher,
    load_notification_settings,
)
from regward.oci.digest import is_digest
from regward.reeval.events import DecisionNotifier
from regward.reeval.feedsource import open_feed_source
from regward.reeval.jobs import JobStore, ReevalError
from regward.reeval.membership import Membership, MembershipStore, Sighting
from regward.reeval.scanportfolio import ScanPortfolio
from regward.reeval.scheduler import Scheduler, SchedulerSettings
from regward.scanning.feeds import FeedProvider, default_store_dir
from regward.vulns import Feed, FeedError

if TYPE_CHECKING:
    from regward.gate.decider import Decider
    from regward.gate.settings import GateSettings
    from regward.policy.model import Policy
    from regward.store.db import Store

logger = logging.getLogger(__name__)

MEMBERSHIP_QUEUE = 100_000
"""Sightings waiting to be written; more are dropped and counted."""
MEMBERSHIP_REFRESH = 300.0
"""Seconds during which a repeated sighting of the same (repository, digest, tag) is not written
again."""


class ScheduledFeeds(FeedProvider):
    """The gate scanner's feed: the one the scheduler polled last.

    The first `get()` before the scheduler's first poll polls at once in a worker thread.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        """Serve the feed of `scheduler`."""
        super().__init__(scheduler.source.description)
        self._scheduler = scheduler
        self._first = asyncio.Lock()

    @property
    def revision(self) -> str | None:
        """The revision of the scheduler's feed, None before the first poll."""
        return self._scheduler.rematcher.revision

    async def get(self) -> Feed:
        """Return the scheduler's current feed.

        Raises:
            FeedError: the feed has not been loaded and loading it failed.
        """
        feed = self._scheduler.rematcher.feed
        if feed is not None:
            return feed
        async with self._first:
            if self._scheduler.rematcher.feed is None:
                await asyncio.to_thread(self._scheduler.poll_now)
        feed = self._scheduler.rematcher.feed
        if feed is None:
            raise FeedError(
                f"the vulnerability feed {self._scheduler.source.description} could not be "
                f"loaded: {self._scheduler.last_error or 'no records were read'}"
            )
        return feed


class MembershipWriter:
    """Writes portfolio sightings from a daemon thread; `submit` only appends to a queue."""

    def __init__(self, store: MembershipStore, *, interval: float = 0.5) -> None:
        """Write to `store` every `interval` seconds."""
        self.store = store
        self.interval = interval
        self.dropped = 0
        self._queue: queue.Queue[Sighting] = queue.Queue(maxsize=MEMBERSHIP_QUEUE)
        self._recent: dict[tuple[str, str, str | None], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="regward-portfolio", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, sighting: Sighting) -> None:
        """Queue a sighting unless the same one was queued recently; a full queue drops it."""
        key = (sighting.repository, sighting.digest, sighting.tag)
        now = time.monotonic()
        seen = self._recent.get(key)
        if seen is not None and now - seen < MEMBERSHIP_REFRESH:
            return
        if len(self._recent) > MEMBERSHIP_QUEUE:
            self._recent.clear()
        self._recent[key] = now
        try:
            self._queue.put_nowait(sighting)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("portfolio queue is full: %d sightings dropped so far", self.dropped)

    def _drain(self) -> list[Sighting]:
        batch: list[Sighting] = []
        while len(batch) < 1000:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def flush(self) -> None:
        """Write every queued sighting from the calling thread."""
        while batch := self._drain():
            try:
                self.store.record(batch)
            except ReevalError:
                # The batch is lost; a later pull of the same image records it again.
                logger.exception("writing %d portfolio sightings failed", len(batch))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def stop(self) -> None:
        """Stop the thread after writing what is queued."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class GateReevaluation:
    """Re-evaluation for one gate; see the module docstring."""

    def __init__(self, settings: GateSettings, store: Store, policy: Callable[[], Policy]) -> None:
        """Prepare the parts from the gate's settings; nothing runs before `start()`.

        Raises:
            NotifyError: the `notifications` section is invalid or a secret cannot be read.
            FeedError: the feed source is neither a directory nor an http(s) URL.
        """
        self.settings = settings
        self.policy = policy
        self.membership = MembershipWriter(MembershipStore(store.engine))
        notification_settings = load_notification_settings(
            settings.notifications, settings.config_dir
        )
        notification_store = NotificationStore(store.engine)
        self.dispatcher: WebhookDispatcher | None = None
        if notification_settings.enabled:
            self.dispatcher = WebhookDispatcher(notification_store, notification_settings)
        self.notifier = Notifier(notification_store, notification_settings, self.dispatcher)
        self.scheduler: Scheduler | None = None
        self.feeds: ScheduledFeeds | None = None
        self._decider: Decider | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if settings.feed is not None and settings.feed_interval > 0:
            source = open_feed_source(
                settings.feed, store_dir=settings.feed_store or default_store_dir()
            )
            listener = DecisionNotifier(
                policy,
                MembershipStore(store.engine),
                self.notifier,
                on_change=[self._findings_changed],
            )
            self.scheduler = Scheduler(
                source,
                ScanPortfolio(store.engine),
                JobStore(store.engine),
                settings=SchedulerSettings(
                    feed_interval=settings.feed_interval, full_interval=settings.full_interval
                ),
                listeners=[listener],
            )
            self.feeds = ScheduledFeeds(self.scheduler)

    async def start(self, decider: Decider) -> None:
        """Start the membership writer, webhook delivery and the scheduler task."""
        self._decider = decider
        self._loop = asyncio.get_running_loop()
        self.membership.start()
        if self.dispatcher is not None:
            await self.dispatcher.start()
        if self.scheduler is not None:
            self._task = asyncio.create_task(self.scheduler.run(self._stop), name="regward-reeval")

    async def stop(self) -> None:
        """Stop the scheduler after its current batch, then delivery and the writer."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await asyncio.to_thread(self.membership.stop)

    def saw_pull(self, repository: str, reference: str, digest: str) -> None:
        """Record that `repository@digest` was decided, under a tag when `reference` is one."""
        if not digest:
            return
        tag = None if is_digest(reference) else reference
        self.membership.submit(Sighting(repository, digest, tag, Membership.PULL))

    def saw_push(self, repository: str, reference: str, digest: str) -> None:
        """Record that `repository@digest` was pushed through the gate."""
        tag = None if is_digest(reference) else reference
        self.membership.submit(Sighting(repository, digest, tag, Membership.PUSH))

    def saw_promotion(self, repository: str, reference: str, digest: str) -> None:
        """Record that `repository@digest` was promoted into the repository."""
        tag = None if is_digest(reference) else reference
        self.membership.submit(Sighting(repository, digest, tag, Membership.PROMOTE))

    def _findings_changed(self, digest: str) -> None:
        """Drop the gate's cached decisions about `digest`; called from the scheduler thread."""
        decider, loop = self._decider, self._loop
        if decider is None or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(decider.findings_changed, digest)
