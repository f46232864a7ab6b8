"""`regward check`: evaluate one image against a policy without running the gate."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_DENIED, EXIT_ERROR, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="evaluate one image against a policy",
        description="Resolve IMAGE to a digest, gather its evidence and evaluate the policy. "
        "Exit 0 when allowed, 1 when denied, 2 on error.",
    )
    parser.add_argument("image", help="image reference, e.g. 127.0.0.1:5000/test/app:v1")
    parser.add_argument("--policy", required=True, help="policy file (YAML)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    parser.add_argument(
        "--feed",
        metavar="PATH_OR_URL",
        default=os.environ.get("REGWARD_FEED"),
        help="OSV feed for rules with a `vulnerabilities` section, as for `regward serve --feed` "
        "(default: REGWARD_FEED); without it such rules treat the image as unscanned",
    )
    parser.add_argument(
        "--feed-store", metavar="DIR", type=Path, help="directory an http(s) --feed is synced into"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_check(args))


async def _check(args: argparse.Namespace) -> int:
    from regward.gate.decider import Decider, RequestContext
    from regward.oci.client import RegistryClient
    from regward.oci.reference import parse_reference
    from regward.policy.load import load_policy
    from regward.scanning.feeds import FeedProvider
    from regward.scanning.scanner import ImageScanner

    policy = load_policy(args.policy)
    reference = parse_reference(args.image)
    async with RegistryClient.for_registry(reference.registry, insecure=args.insecure) as client:
        feeds = FeedProvider(args.feed, store_dir=args.feed_store) if args.feed else None
        # Nothing is stored: each check catalogs the image again.
        scanner = ImageScanner(client, feeds, None, timeout=None)
        if feeds is not None:
            # A feed that cannot be loaded is an error of the command, not a fact about the image.
            await feeds.get()
        decider = Decider(policy, client, None, scanner=scanner)
        outcome = await decider.decide_pull(
            reference.repository, reference.digest or reference.tag or "latest", RequestContext()
        )
    decision = outcome.decision
    if args.output == "json":
        document: dict[str, object] = {
            "image": args.image,
            "digest": outcome.digest or None,
            "allowed": outcome.status == 200,
            "status": outcome.status,
            "message": outcome.message or (decision.message() if decision else ""),
        }
        if decision is not None:
            document.update(
                {
                    "verdict": decision.verdict.value,
                    "mode": decision.mode.value if decision.mode else None,
                    "rule": decision.rule,
                    "policyRevision": decision.policy_revision,
                    "reasons": [
                        {"code": r.code, "message": r.message, "fix": r.fix}
                        for r in decision.reasons
                    ],
                }
            )
        print(json.dumps(document, indent=2))
    else:
        if outcome.status == 200:
            verdict = "allowed"
            if decision is not None and decision.verdict.value == "deny":
                verdict = f"allowed ({decision.mode.value if decision.mode else ''} mode)"
            print(f"{verdict}: {args.image} ({outcome.digest})")
            if decision is not None:
                print(f"  rule: {decision.rule or '(none, defaultAction)'}")
                for reason in decision.reasons:
                    print(f"  - {reason.message}")
        elif outcome.status == 403 and decision is not None:
            print(f"denied: {decision.message()}")
        else:
            print(f"error: {outcome.message}", file=sys.stderr)
    if outcome.status == 200:
        return EXIT_OK
    if outcome.status == 403:
        return EXIT_DENIED
    return EXIT_ERROR
