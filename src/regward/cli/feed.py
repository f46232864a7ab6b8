"""`regward feed sync` and `regward feed status`: keep an OSV feed store on disk.

A feed store contains complete revisions of a feed and switches the active one atomically, so a gate
started with `--feed STORE` picks up each sync without a restart and never loads a half-written one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_OK


def _store_help() -> str:
    return (
        "feed store directory (default: REGWARD_FEED_STORE, else "
        "$XDG_CACHE_HOME/regward/feed or ~/.cache/regward/feed)"
    )


def register(subparsers: Any) -> None:
    """Add `feed` with its `sync` and `status` subcommands."""
    parser = subparsers.add_parser(
        "feed",
        help="sync and inspect the OSV feed store",
        description="Keep an OSV feed store on disk for `regward scan --feed` and "
        "`regward serve --feed`.",
    )
    commands = parser.add_subparsers(dest="feed_command", metavar="COMMAND", required=True)

    sync = commands.add_parser(
        "sync",
        help="sync the store from a directory, zip or http(s) URL",
        description="Load SOURCE into a new revision of the store and make it active. A local "
        "directory, zip or secdb file replaces the feed's content; an http(s) base URL laid out "
        "like osv.dev's bucket updates it incrementally from modified_id.csv. Exit 0 on success, "
        "2 on error (the previous revision stays active).",
    )
    sync.add_argument("source", metavar="SOURCE", help="directory, zip, file or http(s) base URL")
    sync.add_argument("--store", metavar="DIR", type=Path, help=_store_help())
    sync.add_argument(
        "--ecosystem",
        action="append",
        default=[],
        metavar="NAME",
        help="for a URL: an ecosystem folder to sync, such as PyPI or Debian (repeatable; "
        "default: every ecosystem through the top-level modified_id.csv)",
    )
    sync.set_defaults(handler=run_sync)

    status = commands.add_parser(
        "status",
        help="show the active revision, record counts and last sync",
        description="Print the active revision of the store, its records per ecosystem, its "
        "source and the time of the last sync. Exit 0, or 2 when the store cannot be read.",
    )
    status.add_argument("--store", metavar="DIR", type=Path, help=_store_help())
    status.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    status.set_defaults(handler=run_status)


def _store_dir(value: Path | None) -> Path:
    from regward.scanning.feeds import default_store_dir

    return value if value is not None else default_store_dir()


def run_sync(args: argparse.Namespace) -> int:
    """Sync the store and print the new revision."""
    from rich.console import Console

    from regward.vulns import FeedStore

    directory = _store_dir(args.store)
    store = FeedStore(directory)
    console = Console(stderr=True)
    message = f"syncing {args.source} into {directory}"
    if console.is_terminal:
        with console.status(message):
            result = store.sync(args.source, ecosystems=args.ecosystem)
    else:
        result = store.sync(args.source, ecosystems=args.ecosystem)
    status = store.status()
    previous = result.previous_revision[:12] if result.previous_revision else "none"
    print(
        f"revision {result.revision[:12]} active in {directory}: {status.records} records, "
        f"{len(result.changed_ids)} changed since revision {previous}"
    )
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """Print the state of the store."""
    from regward.vulns import FeedStore

    directory = _store_dir(args.store)
    status = FeedStore(directory).status()
    if args.format == "json":
        document = {
            "store": str(directory),
            "revision": status.revision,
            "source": status.source,
            "lastSync": status.last_sync.isoformat() if status.last_sync else None,
            "records": status.records,
            "counts": dict(status.counts),
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    if status.revision is None:
        print(f"{directory}: no revision yet; run `regward feed sync SOURCE`", file=sys.stderr)
        return EXIT_OK
    last_sync = status.last_sync.isoformat() if status.last_sync else "unknown"
    print(f"store:     {directory}")
    print(f"revision:  {status.revision}")
    print(f"source:    {status.source or 'unknown'}")
    print(f"last sync: {last_sync}")
    print(f"records:   {status.records}")
    width = max((len(name) for name in status.counts), default=0)
    for ecosystem, count in status.counts.items():
        print(f"  {ecosystem.ljust(width)}  {count}")
    return EXIT_OK
