"""Installed Python distributions: `*.dist-info/METADATA` and `*.egg-info/PKG-INFO` (or a
`*.egg-info` file), read with the standard library's RFC 822 header parser as `importlib.metadata`
does."""

from __future__ import annotations

import logging
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from regward.sbom.interface import (
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    FileSystem,
)
from regward.sbom.model import Package
from regward.sbom.purls import make_purl

logger = logging.getLogger(__name__)

_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """Return the PEP 503 normalized form of a distribution name."""
    return _SEPARATORS.sub("-", name).lower()


class PythonCataloger(Cataloger):
    """Reads the core metadata of installed Python distributions."""

    name = "python"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return wheel and egg metadata files, in either letter case of the directory suffix."""
        return (
            FileRequest(kind=self.name, pattern=r"(?:.*/)?[^/]+\.(?:dist-info|DIST-INFO)/METADATA"),
            FileRequest(kind=self.name, pattern=r"(?:.*/)?[^/]+\.(?:egg-info|EGG-INFO)/PKG-INFO"),
            FileRequest(kind=self.name, pattern=r"(?:.*/)?[^/]+\.egg-info"),
        )

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return one package per metadata file that has a name and a version."""
        parser = BytesHeaderParser(policy=compat32)
        packages: list[Package] = []
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            headers = parser.parsebytes(indexed.data)
            name = str(headers.get("Name", "") or "").strip()
            version = str(headers.get("Version", "") or "").strip()
            if not name or not version:
                skipped.append(f"{indexed.path}: Python metadata without Name or Version")
                continue
            if name == "Python":
                # CPython's own egg-info describes the interpreter, not a PyPI distribution.
                continue
            normalized = normalize_name(name)
            packages.append(
                Package(
                    name=normalized,
                    version=version,
                    type="pypi",
                    purl=make_purl("pypi", None, normalized, version),
                    layer_digest=indexed.layer_digest,
                    locations=(indexed.path,),
                )
            )
        return CatalogerResult(tuple(packages), tuple(skipped))
