"""`regward worker`: run the re-evaluation scheduler (and webhook delivery) as its own process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_OK

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "sqlite:///regward.db"


def register(subparsers: Any) -> None:
    """Add the `worker` subcommand."""
    parser = subparsers.add_parser(
        "worker",
        help="keep stored scan results current as the OSV feed changes",
        description=(
            "Poll the feed every --feed-interval; after each change re-match only the images "
            "whose SBOM contains a package that a changed record names, and re-match every image "
            "every --full-interval. Work is queued in the database and resumes after a crash. "
            "Use it beside `regward serve` when re-evaluation should not share the gate's "
            "process; run one worker per database. Exit 0 when stopped by SIGINT or SIGTERM (or "
            "after --once), 2 on error."
        ),
    )
    parser.add_argument(
        "--feed",
        default=os.environ.get("REGWARD_FEED"),
        help="OSV feed: a directory of records (re-read when its files change), a feed store "
        "directory from `regward feed sync` (its active revision is followed), or an http(s) "
        "base URL laid out like osv.dev's bucket (default: REGWARD_FEED)",
    )
    parser.add_argument(
        "--feed-store",
        type=Path,
        help="directory an http(s) --feed is synced into (default: REGWARD_FEED_STORE, else "
        "~/.cache/regward/feed)",
    )
    parser.add_argument(
        "--feed-interval",
        default="15m",
        help="time between feed polls, such as 2s, 15m or 1h (default: 15m)",
    )
    parser.add_argument(
        "--full-interval",
        default="24h",
        help="time between full re-evaluations of every image; 0 turns them off (default: 24h)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("REGWARD_DATABASE_URL", DEFAULT_DATABASE),
        help=f"SQLAlchemy URL of the gate's database (default: REGWARD_DATABASE_URL, else "
        f"{DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--config",
        help="the gate's YAML config file; its `notifications` section configures webhooks and "
        "its `policy` is used when --policy is not given",
    )
    parser.add_argument(
        "--policy",
        help="policy file (YAML); with it, the worker records an event (and sends webhooks) "
        "when a tagged image in a repository whose rule has a `vulnerabilities` section gains "
        "a denying finding or is cleared",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll the feed once, run the queued work to the end, and exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run `regward worker`."""
    return asyncio.run(_work(args))


async def _work(args: argparse.Namespace) -> int:
    from regward.notify import (
        NotificationStore,
        Notifier,
        WebhookDispatcher,
        load_notification_settings,
    )
    from regward.policy.load import load_policy
    from regward.reeval import (
        ChangeListener,
        JobStore,
        MembershipStore,
        Scheduler,
        SchedulerSettings,
        parse_duration,
    )
    from regward.reeval.events import DecisionNotifier
    from regward.reeval.feedsource import open_feed_source
    from regward.reeval.scanportfolio import ScanPortfolio
    from regward.scanning.feeds import default_store_dir
    from regward.store.db import Store
    from regward.vulns import FeedError

    if not args.feed:
        raise FeedError("missing feed: pass --feed PATH_OR_URL or set REGWARD_FEED")
    feed_interval = parse_duration(args.feed_interval, name="--feed-interval")
    full_interval = parse_duration(args.full_interval, name="--full-interval", allow_zero=True)
    source = open_feed_source(args.feed, store_dir=args.feed_store or default_store_dir())

    notifications_section = None
    config_dir = Path(".")
    policy_path = Path(args.policy) if args.policy else None
    if args.config:
        from regward.gate.settings import load_config_file

        config_path = Path(args.config)
        config = load_config_file(config_path)
        notifications_section = config.get("notifications")
        config_dir = config_path.parent
        if policy_path is None and isinstance(config.get("policy"), str):
            policy_path = config_dir / config["policy"]
    notification_settings = load_notification_settings(notifications_section, config_dir)
    policy = load_policy(policy_path) if policy_path is not None else None

    with Store(args.database) as store:
        await asyncio.to_thread(store.migrate)
        # Deliveries are leased, so this dispatcher and a gate's can share the database.
        dispatcher: WebhookDispatcher | None = None
        notification_store = NotificationStore(store.engine)
        if notification_settings.enabled:
            dispatcher = WebhookDispatcher(notification_store, notification_settings)
            await dispatcher.start()
        listeners: list[ChangeListener] = []
        if policy is not None:
            notifier = Notifier(notification_store, notification_settings, dispatcher)
            listeners.append(
                DecisionNotifier(lambda: policy, MembershipStore(store.engine), notifier)
            )
        scheduler = Scheduler(
            source,
            ScanPortfolio(store.engine),
            JobStore(store.engine),
            settings=SchedulerSettings(feed_interval=feed_interval, full_interval=full_interval),
            listeners=listeners,
        )
        try:
            if args.once:
                await asyncio.to_thread(scheduler.run_until_idle)
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, stop.set)
                await scheduler.run(stop)
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
    return EXIT_OK
