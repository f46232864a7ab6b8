"""Background writer that batches audit records into the store off the event loop.

The request path only appends to an in-memory queue; a daemon thread writes batches every
`interval` seconds. If the queue is full the record is dropped and counted, because blocking
pulls on a slow database would turn an audit outage into a registry outage.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from regward.store.db import AuditRecord, Store

logger = logging.getLogger(__name__)


class AuditWriter:
    """Queue audit records and write them in batches from a daemon thread."""

    def __init__(self, store: Store, *, interval: float = 0.2, max_queue: int = 100_000) -> None:
        self._store = store
        self._interval = interval
        self._queue: queue.Queue[AuditRecord] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="regward-audit", daemon=True)
        self.dropped = 0
        """Records lost because the queue was full."""
        self.written = 0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, record: AuditRecord) -> None:
        """Queue one record without waiting; a full queue drops it and counts the loss."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("audit queue is full: %d records dropped so far", self.dropped)

    def _drain(self) -> list[AuditRecord]:
        batch: list[AuditRecord] = []
        while len(batch) < 5000:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: Sequence[AuditRecord]) -> None:
        if not batch:
            return
        try:
            self._store.record(batch)
            self.written += len(batch)
        except Exception:
            # The batch is lost, but the gate keeps deciding; the error is logged with its cause.
            logger.exception("failed to write %d audit records", len(batch))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._write(self._drain())
        while True:
            batch = self._drain()
            if not batch:
                break
            self._write(batch)

    def flush(self) -> None:
        """Write everything queued so far, from the calling thread."""
        while True:
            batch = self._drain()
            if not batch:
                return
            self._write(batch)

    def stop(self) -> None:
        """Stop the thread after writing what is queued."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
