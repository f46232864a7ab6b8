"""`regward promote`: copy an image to another repository if the destination's rule allows it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regward.cli.main import EXIT_DENIED, EXIT_OK

if TYPE_CHECKING:
    from regward.oci.client import RegistryClient
    from regward.scanning.scanner import ImageScanner
    from regward.store.db import Store

DEFAULT_DATABASE = "sqlite:///regward.db"


def register(subparsers: Any) -> None:
    """Add the `promote` subcommand."""
    parser = subparsers.add_parser(
        "promote",
        help="copy an image to another repository, gated by the destination's policy rule",
        description=(
            "Resolve SOURCE to a digest once, evaluate the policy rule of DESTINATION's "
            "repository on it, and copy the image with its signatures, attestations, SBOMs and "
            "referrers. DESTINATION gets the digest and, when it names one, the tag. Exit 0 "
            "when promoted, 1 when the rule refuses (the reasons are printed), 2 on error."
        ),
    )
    parser.add_argument("source", help="image to promote, e.g. 127.0.0.1:5000/dev/app:v1")
    parser.add_argument(
        "destination",
        help="repository to promote to, with an optional tag, e.g. 127.0.0.1:5000/prod/app:v1",
    )
    parser.add_argument(
        "--policy",
        default=os.environ.get("REGWARD_POLICY"),
        help="policy file (YAML) whose rule for the destination decides (default: REGWARD_POLICY)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("REGWARD_DATABASE_URL", DEFAULT_DATABASE),
        help="SQLAlchemy URL of the audit database (default: REGWARD_DATABASE_URL, else "
        f"{DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--feed",
        default=os.environ.get("REGWARD_FEED"),
        help="OSV feed for destination rules with a `vulnerabilities` section: a directory or zip "
        "of records, a feed store directory, or an http(s) URL (default: REGWARD_FEED). Without "
        "it such rules see the image as unscanned",
    )
    parser.add_argument(
        "--feed-store",
        help="directory an http(s) --feed is synced into (default: REGWARD_FEED_STORE, else "
        "~/.cache/regward/feed)",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to non-loopback registries"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run `regward promote`."""
    return asyncio.run(_promote(args))


async def _promote(args: argparse.Namespace) -> int:
    from regward.oci.client import RegistryClient
    from regward.oci.reference import parse_reference
    from regward.policy.load import load_policy
    from regward.promotion import PolicyCheck, Promoter, PromotionError, result_json
    from regward.store.db import Store

    if not args.policy:
        raise PromotionError(
            "missing policy: pass --policy FILE or set REGWARD_POLICY; a promotion is always "
            "checked against the destination's rule"
        )
    policy = load_policy(args.policy)
    source = parse_reference(args.source)
    destination = parse_reference(args.destination)

    with Store(args.database) as store:
        await asyncio.to_thread(store.migrate)
        async with RegistryClient.for_registry(
            source.registry, insecure=args.insecure
        ) as source_client:
            scanner = _scanner(args, source_client, store)
            promoter = Promoter(
                PolicyCheck(policy, scanner=scanner),
                audit=lambda record: store.record([record]),
                identity=_identity(),
            )
            try:
                if destination.registry == source.registry:
                    result = await promoter.promote(
                        source_client, source, source_client, destination
                    )
                else:
                    async with RegistryClient.for_registry(
                        destination.registry, insecure=args.insecure
                    ) as destination_client:
                        result = await promoter.promote(
                            source_client, source, destination_client, destination
                        )
            finally:
                if scanner is not None:
                    await scanner.close()
        if result.promoted:
            _record_membership(store, result.digest, destination.repository, destination.tag)

    if args.output == "json":
        print(json.dumps(result_json(result), indent=2))
    elif result.promoted:
        assert result.report is not None
        report = result.report
        blobs = ", ".join(f"{count} {kind}" for kind, count in sorted(report.blobs.items()))
        print(f"promoted {result.source} to {result.destination}")
        print(f"  rule: {result.check.rule or '(none, defaultAction)'}")
        print(
            f"  manifests: {report.manifests_copied} copied, {report.manifests_present} present; "
            f"blobs: {blobs or 'none'}"
        )
        for item in report.accessories:
            where = f" as {item.tag}" if item.tag else ""
            merged = " (merged)" if item.merged else ""
            print(f"  {item.kind} {item.digest}{where}{merged}")
        for reason in result.check.reasons:
            print(f"  warning: {reason}")
    else:
        rule = result.check.rule or "(none, defaultAction)"
        print(
            f"refused: {result.source} may not enter {result.destination} (rule {rule})",
            file=sys.stderr,
        )
        for reason in result.check.reasons:
            print(f"  - {reason}", file=sys.stderr)
    return EXIT_OK if result.promoted else EXIT_DENIED


def _scanner(args: argparse.Namespace, client: RegistryClient, store: Store) -> ImageScanner | None:
    """Return a scanner of the source registry when a feed is given."""
    if not args.feed:
        return None
    from regward.scanning.feeds import FeedProvider, default_store_dir
    from regward.scanning.scanner import ImageScanner
    from regward.store.scans import ScanStore

    feeds = FeedProvider(
        args.feed, store_dir=Path(args.feed_store) if args.feed_store else default_store_dir()
    )
    return ImageScanner(client, feeds, ScanStore(store.engine), timeout=None)


def _record_membership(store: Store, digest: str, repository: str, tag: str | None) -> None:
    """Add the promoted digest to the portfolio of the destination repository."""
    from regward.reeval.membership import Membership, MembershipStore, Sighting

    MembershipStore(store.engine).record([Sighting(repository, digest, tag, Membership.PROMOTE)])


def _identity() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
