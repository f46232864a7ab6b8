"""Continuous re-evaluation: re-match stored SBOMs when the feed changes, only where it matters.

`Scheduler` polls a `FeedSource` every feed interval, queues a delta job for the package keys
that changed records name (persisted in `JobStore`, resumable after a crash), runs a full pass
daily as a safety net, and hands every digest whose findings changed to its listeners.
`Rematcher` does the matching, remembering findings per distinct package across images and
feed revisions.
"""

from __future__ import annotations

from regward.reeval.durations import DurationError, format_duration, parse_duration
from regward.reeval.feedsource import (
    DirectoryFeedSource,
    FeedSource,
    FeedUpdate,
    StoreFeedSource,
    diff_feeds,
    directory_fingerprint,
)
from regward.reeval.jobs import (
    ChangeEntry,
    Job,
    JobKind,
    JobState,
    JobStore,
    ReevalError,
)
from regward.reeval.membership import Membership, MembershipStore, Placement, Sighting
from regward.reeval.memory import MemoryPortfolio
from regward.reeval.rematch import (
    DigestResult,
    Portfolio,
    Rematcher,
    ResultChange,
    finding_keys,
    package_keys,
)
from regward.reeval.scheduler import (
    DEFAULT_FEED_INTERVAL,
    DEFAULT_FULL_INTERVAL,
    ChangeListener,
    Scheduler,
    SchedulerSettings,
)

__all__ = [
    "DEFAULT_FEED_INTERVAL",
    "DEFAULT_FULL_INTERVAL",
    "ChangeEntry",
    "ChangeListener",
    "DigestResult",
    "DirectoryFeedSource",
    "DurationError",
    "FeedSource",
    "FeedUpdate",
    "Job",
    "JobKind",
    "JobState",
    "JobStore",
    "Membership",
    "MembershipStore",
    "MemoryPortfolio",
    "Placement",
    "Portfolio",
    "Rematcher",
    "ReevalError",
    "ResultChange",
    "Scheduler",
    "SchedulerSettings",
    "Sighting",
    "StoreFeedSource",
    "diff_feeds",
    "directory_fingerprint",
    "finding_keys",
    "format_duration",
    "package_keys",
    "parse_duration",
]
