"""Reload the policy while the gate runs.

The watcher loads the policy again every few seconds and compares revisions. The revision hashes
the policy file and every key file it names, so replacing a key file (a rotation or a revocation)
takes effect as surely as editing the policy. A policy that no longer loads (a typo, a missing key
file) leaves the running policy in place and logs the error once per distinct error, so a bad edit
never opens or closes the gate by accident. The new revision changes every decision cache key, so
cached decisions of the old policy stop matching at once.
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
"""Seconds between two loads of the policy."""


class PolicyWatcher:
    """Load a policy file periodically and hand each new valid revision to `on_change`."""

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
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Load the policy again; return True when a new revision was applied."""
        try:
            policy = load_policy(self._path)
        except RegwardError as exc:
            message = str(exc)
            if message != self._last_error:
                logger.error(
                    "policy %s does not load, keeping revision %s: %s",
                    self._path,
                    self._current.revision[:12],
                    message,
                )
                self._last_error = message
            return False
        self._last_error = None
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
