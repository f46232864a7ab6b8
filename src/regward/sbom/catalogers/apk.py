"""Alpine packages from the apk database `lib/apk/db/installed`.

The database is a list of `X:value` lines in blank-line separated records (apk-tools, "Installed
Database V2"). No maintained Python parser of it exists, and the format is a one-line split.
"""

from __future__ import annotations

import logging

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


def parse_apk_installed(text: str) -> list[dict[str, str]]:
    """Return the single-letter fields of each record; a repeated field keeps its first value."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or len(key) != 1:
            continue
        current.setdefault(key, value.strip())
    if current:
        records.append(current)
    return records


class ApkCataloger(Cataloger):
    """Reads Alpine's (and Wolfi's) installed-package database."""

    name = "apk"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return the apk installed database."""
        return (FileRequest(kind=self.name, pattern=r"(?:.*/)?lib/apk/db/installed"),)

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return one package per `P:` record, with the `o:` origin as its source package."""
        packages: list[Package] = []
        distro = context.distro
        for indexed in self.matching_files(fs):
            text = indexed.data.decode("utf-8", errors="replace")
            for record in parse_apk_installed(text):
                name = record.get("P", "")
                version = record.get("V", "")
                if not name or not version:
                    continue
                origin = record.get("o") or name
                purl = make_purl(
                    "apk",
                    distro.id if distro is not None else "alpine",
                    name,
                    version,
                    {
                        "arch": record.get("A", ""),
                        "upstream": origin if origin != name else "",
                        "distro": distro_qualifier(distro),
                    },
                )
                packages.append(
                    Package(
                        name=name,
                        version=version,
                        type="apk",
                        purl=purl,
                        source_name=origin,
                        layer_digest=indexed.layer_digest,
                        locations=(indexed.path,),
                        distro=distro,
                    )
                )
        return CatalogerResult(tuple(packages))
