"""`regward enroll`: add a repository's (or a whole registry's) tagged images to the portfolio."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regward.cli.main import EXIT_DENIED, EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from regward.oci.client import RegistryClient
    from regward.reeval.membership import MembershipStore
    from regward.scanning.scanner import ImageScanner

DEFAULT_DATABASE = "sqlite:///regward.db"
MAX_CATALOG_PAGES = 1000
"""Pages of `/v2/_catalog` read at most; a registry that paginates further is cut off."""
_CATALOG_PAGE_SIZE = 1000
_CATALOG_BODY_LIMIT = 16 * 1024 * 1024
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def register(subparsers: Any) -> None:
    """Add the `enroll` subcommand."""
    parser = subparsers.add_parser(
        "enroll",
        help="add every tagged image of a repository or registry to the portfolio",
        description=(
            "List the tags of TARGET through the registry API (for a registry without a "
            "repository, every repository its /v2/_catalog lists), resolve each tag to a digest, "
            "catalog and match each image against the feed, and record it in the portfolio that "
            "re-evaluation keeps current. Signature, attestation and referrers tags are skipped. "
            "Exit 0 when every image was enrolled, 1 when some could not be scanned, 2 on error."
        ),
    )
    parser.add_argument(
        "target",
        metavar="REPOSITORY_OR_REGISTRY",
        help="e.g. 127.0.0.1:5000/team/app or 127.0.0.1:5000",
    )
    parser.add_argument(
        "--feed",
        default=os.environ.get("REGWARD_FEED"),
        help="OSV feed to match against: a directory or zip of records, a feed store directory, "
        "or an http(s) URL (default: REGWARD_FEED)",
    )
    parser.add_argument(
        "--feed-store",
        type=Path,
        help="directory an http(s) --feed is synced into (default: REGWARD_FEED_STORE, else "
        "~/.cache/regward/feed)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("REGWARD_DATABASE_URL", DEFAULT_DATABASE),
        help=f"SQLAlchemy URL of the gate's database (default: REGWARD_DATABASE_URL, else "
        f"{DEFAULT_DATABASE})",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    parser.set_defaults(handler=run)


@dataclass
class EnrolledImage:
    """One tag that was enrolled."""

    repository: str
    tag: str
    digest: str = ""
    status: str = ""
    """The scan status (`scanned`, `unscanned`, `unavailable`, `not-applicable`) or `error`."""
    findings: int = 0
    detail: str = ""


@dataclass
class EnrollReport:
    """Everything `regward enroll` did."""

    images: list[EnrolledImage] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[EnrolledImage]:
        """Images that could not be resolved or scanned."""
        return [image for image in self.images if image.status in ("error", "unavailable")]


def run(args: argparse.Namespace) -> int:
    """Run `regward enroll`."""
    return asyncio.run(_enroll(args))


async def _enroll(args: argparse.Namespace) -> int:
    from regward.oci.client import RegistryClient
    from regward.reeval.membership import MembershipStore
    from regward.scanning.feeds import FeedProvider, default_store_dir
    from regward.scanning.scanner import ImageScanner
    from regward.store.db import Store
    from regward.store.scans import ScanStore
    from regward.vulns import FeedError

    if not args.feed:
        raise FeedError("missing feed: pass --feed PATH_OR_URL or set REGWARD_FEED")
    registry, repository = _split_target(args.target)
    report = EnrollReport()
    with Store(args.database) as store:
        await asyncio.to_thread(store.migrate)
        membership = MembershipStore(store.engine)
        feeds = FeedProvider(args.feed, store_dir=args.feed_store or default_store_dir())
        await feeds.get()
        async with RegistryClient.for_registry(registry, insecure=args.insecure) as client:
            scanner = ImageScanner(client, feeds, ScanStore(store.engine), timeout=None)
            try:
                repositories = (
                    [repository] if repository is not None else await list_repositories(client)
                )
                report.repositories = repositories
                for name in repositories:
                    await enroll_repository(client, scanner, membership, name, report)
            finally:
                await scanner.close()

    _print(report, args.output, registry)
    if report.failed:
        return EXIT_DENIED
    return EXIT_OK if report.images or report.repositories else EXIT_ERROR


def _split_target(target: str) -> tuple[str, str | None]:
    """Return (registry, repository or None) for `host[:port]` or a repository reference.

    Raises:
        ReevalError: the target names a tag or digest.
        InvalidReferenceError: the target is not a valid registry or repository.
    """
    from regward.oci.reference import normalize_registry, parse_reference
    from regward.reeval.jobs import ReevalError

    if "/" not in target.rstrip("/"):
        return normalize_registry(target.rstrip("/")), None
    reference = parse_reference(target)
    if reference.tag is not None or reference.digest is not None:
        raise ReevalError(
            f"invalid enroll target {target!r}: name a repository or a registry, without a tag "
            "or digest"
        )
    return reference.registry, reference.repository


async def list_repositories(client: RegistryClient) -> list[str]:
    """Return every repository the registry's `/v2/_catalog` lists, following `Link` pages.

    Raises:
        ReevalError: the registry does not allow listing its catalog, or sent a malformed page.
    """
    from regward.oci.reference import validate_repository
    from regward.reeval.jobs import ReevalError

    repositories: list[str] = []
    path: str | None = f"/v2/_catalog?n={_CATALOG_PAGE_SIZE}"
    for _ in range(MAX_CATALOG_PAGES):
        if path is None:
            return repositories
        response = await client.request("GET", path)
        try:
            if response.status != 200:
                raise ReevalError(
                    f"registry {client.base_url} does not list its repositories "
                    f"(GET /v2/_catalog returned HTTP {response.status}): enroll each repository "
                    "by name instead"
                )
            body = await response.content.read(_CATALOG_BODY_LIMIT)
            link = response.headers.get("Link", "")
        finally:
            response.release()
        try:
            names = json.loads(body).get("repositories") or []
        except (ValueError, AttributeError) as exc:
            raise ReevalError(f"registry {client.base_url} sent a malformed catalog page") from exc
        repositories.extend(validate_repository(str(name)) for name in names)
        match = _NEXT_LINK.search(link)
        path = match.group(1) if match else None
        if path is not None and not path.startswith("/v2/_catalog"):
            raise ReevalError(
                f"registry {client.base_url} linked the next catalog page to {path!r}, outside "
                "/v2/_catalog"
            )
    return repositories


async def enroll_repository(
    client: RegistryClient,
    scanner: ImageScanner,
    membership: MembershipStore,
    repository: str,
    report: EnrollReport,
) -> None:
    """Enroll every tag of `repository` that is not a signature, attestation or referrers tag."""
    from regward.oci.errors import OCIError
    from regward.reeval.membership import Membership, Sighting
    from regward.signatures.cosign import is_accessory_tag

    try:
        tags = await client.list_tags(repository)
    except OCIError as exc:
        report.images.append(EnrolledImage(repository, "", status="error", detail=str(exc)))
        return
    for tag in sorted(tags):
        if is_accessory_tag(tag):
            continue
        image = EnrolledImage(repository, tag)
        report.images.append(image)
        try:
            fetched = await client.get_manifest(repository, tag)
        except OCIError as exc:
            image.status, image.detail = "error", str(exc)
            continue
        image.digest = fetched.digest
        sightings = [Sighting(repository, fetched.digest, tag, Membership.ENROLL)]
        sightings.extend(
            Sighting(repository, child.digest, None, Membership.ENROLL)
            for child in fetched.manifest.manifests
        )
        await asyncio.to_thread(membership.record, sightings)
        result = await scanner.scan(repository, fetched.digest, fetched.manifest)
        image.status = str(result.status)
        image.findings = len(result.findings)
        image.detail = result.detail


def _print(report: EnrollReport, output: str, registry: str) -> None:
    if output == "json":
        document = {
            "registry": registry,
            "repositories": report.repositories,
            "images": [
                {
                    "repository": image.repository,
                    "tag": image.tag,
                    "digest": image.digest or None,
                    "status": image.status,
                    "findings": image.findings,
                    "detail": image.detail or None,
                }
                for image in report.images
            ],
        }
        print(json.dumps(document, indent=2))
        return
    for image in report.images:
        where = f"{registry}/{image.repository}:{image.tag}"
        line = f"{image.status:<14} {where} {image.digest}"
        if image.status == "scanned":
            line += f" ({image.findings} findings)"
        elif image.detail:
            line += f": {image.detail}"
        print(line)
    print(
        f"enrolled {len(report.images) - len(report.failed)} of {len(report.images)} tags in "
        f"{len(report.repositories)} repositories",
        file=sys.stderr,
    )
