"""`regward deployments`: list the workload containers admitted and still current at a time."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from regward.cli.main import EXIT_ERROR, EXIT_OK

DEFAULT_DATABASE = "sqlite:///regward.db"

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def register(subparsers: Any) -> None:
    """Add the `deployments` subcommand."""
    parser = subparsers.add_parser(
        "deployments",
        help="list workload containers that were admitted and current at a time",
        description=(
            "List the containers of Kubernetes workloads that the admission webhook admitted "
            "at or before --at and that no later admission or DELETE had replaced by then."
        ),
    )
    parser.add_argument(
        "--at",
        required=True,
        help="the time: ISO 8601 such as 2026-03-01T14:30:00Z or 2026-03-01 (midnight UTC), "
        "or `now`; a time without an offset is read as UTC",
    )
    parser.add_argument("--namespace", help="only this Kubernetes namespace")
    parser.add_argument(
        "--database",
        default=os.environ.get("REGWARD_DATABASE_URL", DEFAULT_DATABASE),
        help="SQLAlchemy URL of the gate's database (default: REGWARD_DATABASE_URL or "
        f"{DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default text)"
    )
    parser.set_defaults(handler=run)


def parse_time(text: str) -> datetime:
    """Parse the `--at` value into an aware UTC datetime.

    Raises:
        ValueError: the text is not `now`, a date or an ISO 8601 date and time.
    """
    value = text.strip()
    if value.lower() == "now":
        return datetime.now(UTC)
    if _DATE_ONLY.fullmatch(value):
        value += "T00:00:00"
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def run(args: argparse.Namespace) -> int:
    """List the records current at `--at`; exit 0, or 2 when the time or database is bad."""
    from regward.admission.records import DeploymentRecorder
    from regward.store.db import Store

    try:
        at = parse_time(args.at)
    except ValueError:
        print(
            f"error: invalid --at {args.at!r}: expected ISO 8601 such as 2026-03-01T14:30:00Z, "
            "a date such as 2026-03-01, or now",
            file=sys.stderr,
        )
        return EXIT_ERROR

    store = Store(args.database)
    try:
        records = DeploymentRecorder(store.engine).list_at(at, namespace=args.namespace)
    finally:
        store.close()

    if args.output == "json":
        document = [
            {
                "namespace": record.namespace,
                "kind": record.kind,
                "name": record.name,
                "container": record.container,
                "containerList": record.container_list,
                "image": record.image,
                "digest": record.digest,
                "admittedAt": _iso(record.admitted_at),
                "endedAt": _iso(record.ended_at),
                "requestUid": record.request_uid,
            }
            for record in records
        ]
        print(json.dumps(document, indent=2))
        return EXIT_OK

    if not records:
        scope = f" in namespace {args.namespace}" if args.namespace else ""
        print(f"no deployments current at {_iso(at)}{scope}", file=sys.stderr)
        return EXIT_OK
    header = ("NAMESPACE", "KIND", "NAME", "CONTAINER", "IMAGE", "DIGEST", "ADMITTED", "ENDED")
    rows = [
        (
            record.namespace,
            record.kind,
            record.name,
            record.container,
            record.image,
            record.digest or "-",
            _iso(record.admitted_at) or "-",
            _iso(record.ended_at) or "-",
        )
        for record in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return EXIT_OK
