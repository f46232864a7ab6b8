"""The re-evaluation scheduler: feed sync, delta and full jobs, and the listeners of changes.

Each `tick()`:

1. polls the feed source when `feed_interval` has passed since the last poll, and queues a
   delta job for the package keys that the changed records name;
2. queues a full pass when `full_interval` has passed since the last finished one (a safety
   net for changes a delta cannot see, and for comparator fixes);
3. runs queued jobs in batches of `batch_size` digests, recording the cursor after each batch,
   and passes every digest whose findings changed to the listeners.

The first poll of a process has nothing to compare with. The recorded feed revision is the
revision the queued jobs lead to. If the polled revision differs from it, the changes in between
are unknown, so a full pass is queued. Otherwise the queue is resumed as it is.

`tick()` blocks on feed reads, matching and the database. `run()` calls it in a worker thread,
so the event loop that serves registry requests keeps running while a pass is in progress.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from regward.errors import RegwardError
from regward.reeval.feedsource import FeedSource, FeedUpdate
from regward.reeval.jobs import (
    STATE_FEED_REVISION,
    STATE_LAST_FULL,
    Job,
    JobKind,
    JobState,
    JobStore,
)
from regward.reeval.rematch import Portfolio, Rematcher, ResultChange

logger = logging.getLogger(__name__)

DEFAULT_FEED_INTERVAL = 15 * 60.0
"""Seconds between feed polls when `--feed-interval` is not given."""
DEFAULT_FULL_INTERVAL = 24 * 3600.0
"""Seconds between full passes."""


@dataclass(frozen=True)
class SchedulerSettings:
    """Timing and batch sizes of the scheduler."""

    feed_interval: float = DEFAULT_FEED_INTERVAL
    """Seconds between feed polls."""
    full_interval: float = DEFAULT_FULL_INTERVAL
    """Seconds between full passes; 0 turns them off."""
    batch_size: int = 500
    """Digests re-matched between two cursor updates."""
    lease: float = 600.0
    """Seconds a job stays taken without progress before another process may resume it."""
    tick_interval: float = 1.0
    """Seconds between two ticks of `run()` when there is no queued work."""
    retention: float = 7 * 24 * 3600.0
    """Seconds finished jobs and change log entries are kept."""
    confirm_interval: float = 60.0
    """Seconds between two confirmations that results of an unchanged feed are current."""


class ChangeListener(Protocol):
    """Receives digests whose findings changed; called from the scheduler's thread."""

    def findings_changed(self, changes: Sequence[ResultChange]) -> None:
        """Handle one batch of changes. Exceptions are logged and do not stop the job."""
        ...


class Scheduler:
    """Keeps stored results current as the feed changes; see the module docstring."""

    def __init__(
        self,
        source: FeedSource,
        portfolio: Portfolio,
        jobs: JobStore,
        *,
        rematcher: Rematcher | None = None,
        settings: SchedulerSettings | None = None,
        listeners: Sequence[ChangeListener] = (),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Create a scheduler; nothing runs before `tick()` or `run()`."""
        self.source = source
        self.portfolio = portfolio
        self.jobs = jobs
        self.rematcher = rematcher or Rematcher()
        self.settings = settings or SchedulerSettings()
        self.listeners = list(listeners)
        self._clock = clock
        self._now = now
        self._next_poll = 0.0
        self._next_prune = 0.0
        self._next_confirm = 0.0
        self._current: Job | None = None
        self._lock = threading.Lock()
        self.last_update: FeedUpdate | None = None
        self.last_error: str | None = None
        """The message of the last error a tick logged, None after a clean tick."""

    # -- ticks -----------------------------------------------------------------------------

    def tick(self) -> bool:
        """Run the three steps of the module docstring once; return whether work remains.

        Errors of the feed or the database are logged and retried on the next tick. A failed
        feed poll does not stop queued jobs from running.
        """
        with self._lock:
            failures: list[str] = []
            for step in (self._poll_if_due, self._queue_full_if_due, self._prune_if_due):
                try:
                    step()
                except RegwardError as exc:
                    failures.append(str(exc))
                    logger.exception("re-evaluation step %s failed: %s", step.__name__, exc)
            try:
                remaining = self._run_one_batch()
            except RegwardError as exc:
                failures.append(str(exc))
                logger.exception("re-evaluation job step failed: %s", exc)
                remaining = False
            self.last_error = failures[-1] if failures else None
            return remaining

    def poll_now(self) -> FeedUpdate | None:
        """Poll the feed at once, whatever the interval; queue the job it calls for."""
        with self._lock:
            self._next_poll = 0.0
            self._poll_if_due()
            return self.last_update

    def run_until_idle(self, *, max_batches: int = 1_000_000) -> int:
        """Tick until no queued work is left; return the batches run. For tests and one-shot use."""
        batches = 0
        while batches < max_batches:
            batches += 1
            if not self.tick():
                break
        return batches

    async def run(self, stop: asyncio.Event) -> None:
        """Tick in a worker thread until `stop` is set."""
        logger.info(
            "re-evaluation scheduler started: feed %s every %.0f s, full pass every %.0f s",
            self.source.description,
            self.settings.feed_interval,
            self.settings.full_interval,
        )
        while not stop.is_set():
            remaining = await asyncio.to_thread(self.tick)
            if remaining:
                # Let other tasks run between batches of a long pass.
                await asyncio.sleep(0)
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.tick_interval)
            except TimeoutError:
                pass
        logger.info("re-evaluation scheduler stopped")

    def run_forever(self, stop: threading.Event) -> None:
        """Tick in the calling thread until `stop` is set (the `regward worker` loop)."""
        logger.info(
            "re-evaluation worker started: feed %s every %.0f s, full pass every %.0f s",
            self.source.description,
            self.settings.feed_interval,
            self.settings.full_interval,
        )
        while not stop.is_set():
            if not self.tick():
                stop.wait(self.settings.tick_interval)
        logger.info("re-evaluation worker stopped")

    # -- step 1: feed ----------------------------------------------------------------------

    def _poll_if_due(self) -> None:
        if self._clock() < self._next_poll:
            return
        self._next_poll = self._clock() + self.settings.feed_interval
        update = self.source.poll()
        if update is None:
            self._confirm_if_due()
            return
        self.last_update = update
        if update.initial:
            self.rematcher.set_feed(update.feed, None)
            recorded = self.jobs.get_state(STATE_FEED_REVISION)
            if recorded != update.revision:
                logger.info(
                    "feed revision %s differs from the recorded %s: queueing a full pass",
                    update.revision[:12],
                    (recorded or "none")[:12],
                )
                self.jobs.enqueue(JobKind.FULL, update.revision, only_if_revision_differs=True)
            return
        self.rematcher.set_feed(update.feed, update.changed_keys)
        self.jobs.enqueue(
            JobKind.DELTA,
            update.revision,
            previous_revision=update.previous_revision,
            keys=update.changed_keys,
            only_if_revision_differs=True,
        )

    def _confirm_if_due(self) -> None:
        """Mark results of the current revision as scanned now, after a poll found no change.

        A result matched against the feed that is still current is as fresh as the poll that
        found the feed unchanged. This runs at most once per `confirm_interval`.
        """
        revision = self.rematcher.revision
        if revision is None or self._clock() < self._next_confirm:
            return
        self._next_confirm = self._clock() + self.settings.confirm_interval
        now = self._now()
        confirmed = self.portfolio.advance_revision(revision, revision, now, matched_before=now)
        logger.debug("feed revision %s unchanged: %d results confirmed", revision[:12], confirmed)

    # -- step 2: full pass -----------------------------------------------------------------

    def _queue_full_if_due(self) -> None:
        if self.settings.full_interval <= 0 or self.rematcher.feed is None:
            return
        last = self.jobs.get_state(STATE_LAST_FULL)
        now = self._now()
        if last is not None:
            elapsed = (now - datetime.fromisoformat(last)).total_seconds()
            if elapsed < self.settings.full_interval:
                return
        if self.jobs.has_open(JobKind.FULL):
            return
        revision = self.rematcher.feed.revision
        logger.info("queueing the periodic full re-evaluation (feed revision %s)", revision[:12])
        self.jobs.enqueue(JobKind.FULL, revision)

    # -- step 3: jobs ----------------------------------------------------------------------

    def _run_one_batch(self) -> bool:
        """Run one batch of the oldest job; return whether queued work remains."""
        if self.rematcher.feed is None:
            return False
        # The job this scheduler holds the lease of comes first; claiming it again would wait
        # for that lease to expire.
        job = self._current or self.jobs.claim(lease=self.settings.lease)
        self._current = None
        if job is None:
            return False
        try:
            finished = self._batch(job)
        except Exception as exc:
            state = self.jobs.release(job.id, f"{type(exc).__name__}: {exc}")
            logger.exception(
                "re-evaluation job %d failed (%s): %s",
                job.id,
                "given up" if state is JobState.FAILED else "will retry",
                exc,
            )
            return False
        if finished:
            return self.jobs.has_open()
        return True

    def _batch(self, job: Job) -> bool:
        """Re-match the next batch of `job`; return True when the job is finished."""
        size = self.settings.batch_size
        if job.kind is JobKind.DELTA:
            digests = [
                digest
                for digest in self.portfolio.digests_for_keys(job.keys)
                if job.cursor is None or digest > job.cursor
            ][:size]
        else:
            digests = self.portfolio.digests_after(job.cursor, size)

        if not digests:
            return self._finish(job)

        started = time.perf_counter()
        changes = self.rematcher.rematch(
            self.portfolio,
            digests,
            self._now(),
            previous_revision=job.previous_revision if job.kind is JobKind.DELTA else None,
        )
        self.jobs.record_changes(changes)
        self.jobs.progress(
            job.id,
            cursor=digests[-1],
            processed=len(digests),
            changed=len(changes),
            lease=self.settings.lease,
        )
        logger.debug(
            "%s job %d: re-matched %d digests in %.3f s, %d changed",
            job.kind,
            job.id,
            len(digests),
            time.perf_counter() - started,
            len(changes),
        )
        if changes:
            self._notify(changes)
        if len(digests) < size:
            return self._finish(job)
        self._current = replace(
            job,
            cursor=digests[-1],
            processed=job.processed + len(digests),
            changed=job.changed + len(changes),
        )
        return False

    def _finish(self, job: Job) -> bool:
        now = self._now()
        state: dict[str, str] = {}
        if job.kind is JobKind.DELTA and job.previous_revision is not None:
            advanced = self.portfolio.advance_revision(
                job.previous_revision, job.feed_revision, now, matched_before=job.created_at
            )
            logger.debug(
                "delta job %d: %d other results are valid for revision %s",
                job.id,
                advanced,
                job.feed_revision[:12],
            )
        if job.kind is JobKind.FULL:
            state[STATE_LAST_FULL] = now.isoformat()
        self.jobs.finish(job.id, state_updates=state)
        logger.info("%s re-evaluation job %d finished", job.kind, job.id)
        return True

    def _notify(self, changes: Sequence[ResultChange]) -> None:
        for listener in self.listeners:
            try:
                listener.findings_changed(changes)
            except Exception:
                logger.exception("re-evaluation listener %r failed", listener)

    def _prune_if_due(self) -> None:
        if self._clock() < self._next_prune:
            return
        self._next_prune = self._clock() + 3600.0
        removed = self.jobs.prune(older_than=self.settings.retention)
        if removed:
            logger.debug("pruned %d finished jobs and change log entries", removed)
