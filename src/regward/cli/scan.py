"""`regward scan` and `regward sbom`: list an image's vulnerabilities, or write its SBOM.

TARGET is a registry reference, `oci:DIR[:TAG]`, `docker-archive:FILE` or `sbom:FILE`. Machine
output goes to stdout (or `--output FILE`); progress and the summary go to stderr.

Exit codes of `regward scan`: 0 when no finding reaches `--fail-on` (always 0 without it), 1 when
one does, 2 on a usage error or when the target or the feed cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from regward.cli.main import EXIT_DENIED, EXIT_ERROR, EXIT_OK

logger = logging.getLogger(__name__)

SCAN_FORMATS = ("table", "json", "sarif", "cyclonedx")
SBOM_FORMATS = ("spdx-json", "cyclonedx-json")
FAIL_ON_CHOICES = ("low", "medium", "high", "critical", "any")

_TARGET_HELP = (
    "image to read: a registry reference (127.0.0.1:5000/team/app:v1), oci:DIR[:TAG], "
    "docker-archive:FILE or sbom:FILE (SPDX or CycloneDX JSON)"
)

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add the `scan` and `sbom` subcommands."""
    scan = subparsers.add_parser(
        "scan",
        help="list the vulnerabilities of an image",
        description=(
            "Catalog the packages of TARGET and match them against an OSV feed. Exit 0 when no "
            "finding reaches --fail-on (always 0 without it), 1 when one does, 2 on error."
        ),
    )
    scan.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    scan.add_argument(
        "--feed",
        metavar="PATH_OR_URL",
        default=os.environ.get("REGWARD_FEED"),
        help="OSV feed: a directory or zip of OSV records, a feed store directory from "
        "`regward feed sync`, or an http(s) base URL laid out like osv.dev's bucket "
        "(default: REGWARD_FEED)",
    )
    scan.add_argument(
        "--feed-store",
        metavar="DIR",
        type=Path,
        help="directory an http(s) --feed is synced into (default: REGWARD_FEED_STORE, else "
        "~/.cache/regward/feed)",
    )
    scan.add_argument("--format", choices=SCAN_FORMATS, default="table", help="output format")
    scan.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        help="exit 1 when a finding has this severity or higher ('any' includes unknown)",
    )
    scan.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write the report to FILE, not stdout"
    )
    scan.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    scan.set_defaults(handler=run_scan)

    sbom = subparsers.add_parser(
        "sbom",
        help="write the SBOM of an image",
        description="Catalog the packages of TARGET and write them as SPDX 2.3 or CycloneDX 1.6 "
        "JSON. Exit 0 on success, 2 on error.",
    )
    sbom.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    sbom.add_argument(
        "--format",
        choices=SBOM_FORMATS,
        default="spdx-json",
        help="SBOM format (default spdx-json)",
    )
    sbom.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write the SBOM to FILE, not stdout"
    )
    sbom.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    sbom.set_defaults(handler=run_sbom)


class Progress:
    """A spinner with the current step on a terminal's stderr; silent when stderr is redirected."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    def step(self, message: str, work: Callable[[], T]) -> T:
        """Run `work` while showing `message`."""
        if not self.console.is_terminal:
            return work()
        with self.console.status(message):
            return work()


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as handle:
        yield handle


def run_scan(args: argparse.Namespace) -> int:
    """Scan TARGET and print the report."""
    from regward.policy.vulnerabilities import SeverityLevel
    from regward.scanning import catalog_any, load_feed, parse_target
    from regward.scanning.report import (
        cyclonedx_document,
        dump_json,
        findings_document,
        render_table,
        sarif_document,
        severity_of,
    )
    from regward.vulns import match_report

    if not args.feed:
        print("error: missing feed: pass --feed PATH_OR_URL or set REGWARD_FEED", file=sys.stderr)
        return EXIT_ERROR
    target = parse_target(args.target)
    progress = Progress()
    cataloged = progress.step(
        f"cataloging {args.target}", lambda: catalog_any(target, insecure=args.insecure)
    )
    feed = progress.step(
        f"loading the feed {args.feed}",
        lambda: load_feed(args.feed, store_dir=args.feed_store),
    )
    report = progress.step(
        f"matching {len(cataloged.catalog.packages)} packages",
        lambda: match_report(feed, cataloged.catalog.packages),
    )
    findings = list(report.findings)

    with _output(args.output) as out:
        if args.format == "json":
            document = findings_document(
                args.target, findings, digest=cataloged.digest, feed_revision=feed.revision
            )
            out.write(dump_json(document))
        elif args.format == "sarif":
            out.write(dump_json(sarif_document(args.target, findings)))
        elif args.format == "cyclonedx":
            out.write(cyclonedx_document(cataloged.catalog, findings, args.target).decode())
            out.write("\n")
        else:
            from rich.console import Console

            render_table(Console(file=out, width=160 if args.output else None), findings)

    affected = {finding.package for finding in findings}
    print(
        f"{len(findings)} findings in {len(affected)} of {len(cataloged.catalog.packages)} "
        f"packages of {args.target} (feed revision {feed.revision[:12]})",
        file=sys.stderr,
    )
    if report.unparseable:
        print(
            f"{len(report.unparseable)} advisory ranges were not evaluated because a version in "
            "them is malformed; -v lists them",
            file=sys.stderr,
        )
        for item in report.unparseable:
            logger.info(
                "not evaluated: %s for %s %s: %s",
                item.record_id,
                item.package.name,
                item.package.version,
                item.reason,
            )
    if args.fail_on is None:
        return EXIT_OK
    if args.fail_on == "any":
        return EXIT_DENIED if findings else EXIT_OK
    threshold = SeverityLevel(args.fail_on)
    failing = [finding for finding in findings if severity_of(finding).rank >= threshold.rank]
    return EXIT_DENIED if failing else EXIT_OK


def run_sbom(args: argparse.Namespace) -> int:
    """Catalog TARGET and print its SBOM."""
    from regward.sbom import write_cyclonedx, write_spdx
    from regward.scanning import catalog_any, parse_target

    target = parse_target(args.target)
    cataloged = Progress().step(
        f"cataloging {args.target}", lambda: catalog_any(target, insecure=args.insecure)
    )
    name = args.target
    if cataloged.digest is not None and target.reference is not None:
        name = f"{target.reference.name}@{cataloged.digest}"
    if args.format == "cyclonedx-json":
        document = write_cyclonedx(cataloged.catalog, name)
    else:
        document = write_spdx(cataloged.catalog, name)
    with _output(args.output) as out:
        out.write(document.decode())
        out.write("\n")
    print(
        f"{len(cataloged.catalog.packages)} packages in {args.target}"
        + (
            f", {len(cataloged.catalog.skipped)} entries skipped"
            if cataloged.catalog.skipped
            else ""
        ),
        file=sys.stderr,
    )
    return EXIT_OK
