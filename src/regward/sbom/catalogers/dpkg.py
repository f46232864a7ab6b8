"""Debian packages from the dpkg database: `var/lib/dpkg/status` and the one-file-per-package
`var/lib/dpkg/status.d/*` of distroless images.

The database is in deb822 form (Debian Policy 5.1). A small parser of the five single-line fields
needed splits it here instead of python-debian's `Deb822`, for speed. Importing `debian.deb822` and
parsing a 1,030-package status file with it took about 65 ms here. That was a quarter of a whole
cataloging run, and this parser takes under 10 ms.
"""

from __future__ import annotations

import logging
import re

from regward.sbom.interface import (
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    FileSystem,
)
from regward.sbom.model import Package
from regward.sbom.purls import distro_qualifier, make_purl

logger = logging.getLogger(__name__)

_SOURCE = re.compile(r"(?P<name>\S+)(?:\s+\((?P<version>[^)]*)\))?")
_FIELDS = frozenset({"Package", "Version", "Source", "Status", "Architecture"})
# dpkg states whose files are not on disk (dpkg-query(1) "Package states").
_ABSENT_STATES = {"not-installed", "config-files"}


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Split a deb822 file into paragraphs of the `Package`, `Version`, `Source`, `Status` and
    `Architecture` fields. Continuation lines and other fields are skipped."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line.isspace():
            if current:
                paragraphs.append(current)
                current = {}
            continue
        if line[0] in " \t#":
            continue
        name, separator, value = line.partition(":")
        if separator and name in _FIELDS:
            current.setdefault(name, value.strip())
    if current:
        paragraphs.append(current)
    return paragraphs


class DpkgCataloger(Cataloger):
    """Reads the dpkg status database and distroless `status.d` entries."""

    name = "dpkg"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return the dpkg status files, skipping the `.md5sums` files beside `status.d` entries."""
        return (
            FileRequest(kind=self.name, pattern=r"(?:.*/)?lib/dpkg/status"),
            FileRequest(
                kind=self.name, pattern=r"(?:.*/)?lib/dpkg/status\.d/(?![^/]*\.md5sums$)[^/]+"
            ),
        )

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return one package per installed dpkg paragraph."""
        packages: list[Package] = []
        for indexed in self.matching_files(fs):
            text = indexed.data.decode("utf-8", errors="replace")
            for paragraph in parse_paragraphs(text):
                package = self._package(paragraph, indexed.path, indexed.layer_digest, context)
                if package is not None:
                    packages.append(package)
        return CatalogerResult(tuple(packages))

    @staticmethod
    def _package(
        paragraph: dict[str, str], path: str, layer: str, context: CatalogContext
    ) -> Package | None:
        name = paragraph.get("Package", "").strip()
        version = paragraph.get("Version", "").strip()
        if not name or not version:
            return None
        status = paragraph.get("Status", "").split()
        # status.d entries of distroless images carry no Status field, and they are installed.
        if len(status) == 3 and status[2] in _ABSENT_STATES:
            logger.debug("%s: %s is in state %s, not cataloged", path, name, status[2])
            return None
        source_name: str | None = None
        source_version: str | None = None
        source = paragraph.get("Source", "").strip()
        if source:
            found = _SOURCE.match(source)
            if found is not None:
                source_name = found.group("name")
                source_version = found.group("version") or None
        upstream = ""
        if source_name:
            upstream = f"{source_name}@{source_version}" if source_version else source_name
        distro = context.distro
        namespace = distro.id if distro is not None else "debian"
        purl = make_purl(
            "deb",
            namespace,
            name,
            version,
            {
                "arch": paragraph.get("Architecture", "").strip(),
                "upstream": upstream,
                "distro": distro_qualifier(distro),
            },
        )
        return Package(
            name=name,
            version=version,
            type="deb",
            purl=purl,
            source_name=source_name,
            source_version=source_version,
            layer_digest=layer,
            locations=(path,),
            distro=distro,
        )
