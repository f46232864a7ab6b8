"""`regward trust show`: list the Sigstore trust roots keyless verification uses, with expiries.

Without arguments it shows the public-good root shipped in the installed `sigstore` package.
`--name staging` shows the staging root and `--trusted-root FILE` a private one; both options
may repeat. Exit 0 when every root is usable for at least 30 days, 1 when one is expired or
expires sooner, 2 when a root cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from regward.cli.main import EXIT_DENIED, EXIT_OK


def register(subparsers: Any) -> None:
    """Add `regward trust` and its `show` subcommand."""
    trust = subparsers.add_parser(
        "trust",
        help="show the Sigstore trust roots used for keyless verification",
        description="Inspect the trust roots that keyless signatures are verified against.",
    )
    commands = trust.add_subparsers(dest="trust_command", metavar="SUBCOMMAND")
    show = commands.add_parser(
        "show",
        help="list the Fulcio CAs, Rekor logs, CT logs and timestamp authorities of trust roots",
        description="Print each trusted key and CA with its validity period. Exit 0 when all "
        "roots are usable for at least --warn-days days, 1 otherwise, 2 on a read error.",
    )
    show.add_argument(
        "--name",
        action="append",
        choices=("public-good", "staging"),
        help="a trust root shipped in the sigstore package (repeatable; default: public-good)",
    )
    show.add_argument(
        "--trusted-root",
        action="append",
        metavar="FILE",
        help="a trusted_root.json file, e.g. of a private Sigstore (repeatable)",
    )
    show.add_argument(
        "--warn-days",
        type=int,
        default=30,
        help="report entries that expire within this many days (default: 30)",
    )
    show.add_argument("--output", choices=("text", "json"), default="text", help="output format")
    show.set_defaults(handler=run_show)
    trust.set_defaults(handler=lambda args: _usage(trust))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_show(args: argparse.Namespace) -> int:
    """Print the selected trust roots; return 1 when one is expired or close to expiry."""
    from regward.signatures.trust import TrustRoot, named_trust_root

    roots: list[TrustRoot] = []
    names = args.name or ([] if args.trusted_root else ["public-good"])
    roots.extend(named_trust_root(name) for name in names)
    roots.extend(TrustRoot.load(path) for path in args.trusted_root or [])

    now = datetime.now(UTC)
    period = timedelta(days=args.warn_days)
    warnings: list[str] = []
    documents: list[dict[str, object]] = []
    for root in roots:
        root_warnings = root.expiry_warnings(now, period)
        warnings.extend(root_warnings)
        entries = root.expiries(now)
        if args.output == "json":
            documents.append(
                {
                    "name": root.name,
                    "entries": [
                        {
                            "kind": str(entry.kind),
                            "name": entry.name,
                            "start": entry.start.isoformat(),
                            "expires": entry.expires.isoformat() if entry.expires else None,
                            "active": entry.active,
                        }
                        for entry in entries
                    ],
                    "skipped": list(root.skipped),
                    "warnings": root_warnings,
                }
            )
            continue
        print(f"trust root {root.name}")
        for entry in entries:
            state = "valid" if entry.active else "not valid now"
            expires = f"{entry.expires:%Y-%m-%d}" if entry.expires else "no end"
            print(
                f"  {entry.kind:<6} {entry.name}\n"
                f"         from {entry.start:%Y-%m-%d} until {expires} ({state})"
            )
        for skipped in root.skipped:
            print(f"  ignored: {skipped}")
    if args.output == "json":
        print(json.dumps({"roots": documents}, indent=2))
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr)
    return EXIT_DENIED if warnings else EXIT_OK
