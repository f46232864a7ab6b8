"""Debian packages from the dpkg database: `var/lib/dpkg/status` and the one-file-per-package
`var/lib/dpkg/status.d/*` of distroless images, read with python-debian's deb822 parser."""

from __future__ import annotations

import logging
import re

from debian import deb822

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
_FIELDS = ["Package", "Version", "Source", "Status", "Architecture"]
# dpkg states whose files are not on disk (dpkg-query(1) "Package states").
_ABSENT_STATES = {"not-installed", "config-files"}


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
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            text = indexed.data.decode("utf-8", errors="replace")
            try:
                paragraphs = list(
                    deb822.Deb822.iter_paragraphs(
                        text.splitlines(keepends=True), fields=_FIELDS, use_apt_pkg=False
                    )
                )
            except (ValueError, UnicodeError) as exc:
                skipped.append(f"{indexed.path}: invalid dpkg database: {exc}")
                continue
            for paragraph in paragraphs:
                package = self._package(paragraph, indexed.path, indexed.layer_digest, context)
                if package is not None:
                    packages.append(package)
        return CatalogerResult(tuple(packages), tuple(skipped))

    @staticmethod
    def _package(
        paragraph: deb822.Deb822, path: str, layer: str, context: CatalogContext
    ) -> Package | None:
        name = paragraph.get("Package", "").strip()
        version = paragraph.get("Version", "").strip()
        if not name or not version:
            return None
        status = paragraph.get("Status", "").split()
        # status.d entries of distroless images carry no Status field: they are installed.
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
