"""Reload the policy file while the gate runs.

The watcher checks the file's modification time and size every few seconds and loads it again when
either changed. A file that no longer loads (a typo, a missing key file) leaves the running policy in
place and logs the error, so a bad edit never opens or closes the gate by accident. The new revision
changes every decision cache key, so cached decisions of the old policy stop matching at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from regward.errors import RegwardError
from regward.policy.load import load_policy
from regward.policy.model import Policy

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
"""Seconds between two checks of the policy file."""


class PolicyWatcher:
    """Poll a policy file and hand each new valid version to `on_change`."""

    def __init__(
        self,
        path: Path,
        current: Policy,
        on_change: Callable[[Policy], None],
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._path = path
        self._current = current
        self._on_change = on_change
        self._interval = interval
        self._stamp = self._read_stamp()
        self._task: asyncio.Task[None] | None = None

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def check(self) -> bool:
        """Load the file again if it changed; return True when a new policy was applied."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(self._path)
        except RegwardError as exc:
            logger.error(
                "policy %s changed but does not load, keeping revision %s: %s",
                self._path,
                self._current.revision[:12],
                exc,
            )
            return False
        if policy.revision == self._current.revision:
            return False
        logger.info(
            "policy %s reloaded: revision %s replaces %s",
            self._path,
            policy.revision[:12],
            self._current.revision[:12],
        )
        self._current = policy
        self._on_change(policy)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.to_thread(self.check)

    def start(self) -> None:
        """Start polling in the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
