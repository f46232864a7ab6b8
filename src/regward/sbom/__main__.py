"""`python -m regward.sbom TARGET`: catalog a local image and print how many packages it holds.

TARGET is `oci:DIR[:TAG]` or `docker-archive:FILE`. This entry point exists for the cataloging
benchmark, which times it as a whole process; `regward sbom` is the command for users.
"""

from __future__ import annotations

import sys

from regward.sbom.catalog import catalog_target
from regward.sbom.interface import SbomError


def main(argv: list[str] | None = None) -> int:
    """Print the package count (and one line per type) of the image named in `argv`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m regward.sbom oci:DIR[:TAG] | docker-archive:FILE", file=sys.stderr)
        return 2
    try:
        catalog = catalog_target(args[0])
    except SbomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for package in catalog.packages:
        counts[package.type] = counts.get(package.type, 0) + 1
    print(len(catalog.packages))
    for package_type in sorted(counts):
        print(f"{package_type} {counts[package_type]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
