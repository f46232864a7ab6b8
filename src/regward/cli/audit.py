"""`regward audit`: list the gate's audit records (pulls, pushes, deletes and their decisions)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from rich.console import Console
from rich.table import Table

from regward.cli.main import EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="list audit records of the gate",
        description="List the newest audit records, optionally for one repository or digest.",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("REGWARD_DATABASE_URL", "sqlite:///regward.db"),
        help="database URL (default: REGWARD_DATABASE_URL, else sqlite:///regward.db)",
    )
    parser.add_argument("--repository", help="only records of this repository")
    parser.add_argument("--digest", help="only records of this digest")
    parser.add_argument("--limit", type=int, default=50, help="maximum records (default 50)")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="format")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from regward.store.db import Store

    store = Store(args.database)
    try:
        store.migrate()
        records = store.list_audit(repository=args.repository, digest=args.digest, limit=args.limit)
    finally:
        store.close()
    if args.output == "json":
        for record in records:
            print(
                json.dumps(
                    {
                        "time": record.time.isoformat(),
                        "requestId": record.request_id,
                        "client": record.client_address,
                        "identity": record.identity,
                        "action": str(record.action),
                        "repository": record.repository,
                        "reference": record.reference,
                        "digest": record.digest,
                        "decision": str(record.decision),
                        "rule": record.rule,
                        "reasons": list(record.reasons),
                        "policyRevision": record.policy_revision,
                    }
                )
            )
        return EXIT_OK
    table = Table("time", "action", "repository", "reference", "decision", "rule", "reason")
    for record in records:
        table.add_row(
            record.time.strftime("%Y-%m-%d %H:%M:%S"),
            str(record.action),
            record.repository,
            record.reference or "",
            str(record.decision),
            record.rule or "",
            record.reasons[0] if record.reasons else "",
        )
    Console().print(table)
    return EXIT_OK
