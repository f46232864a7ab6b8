"""npm packages installed in `node_modules`: the `package.json` at the top of each package
directory (`node_modules/<name>/` or `node_modules/@<scope>/<name>/`)."""

from __future__ import annotations

import json
import logging

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


class NpmCataloger(Cataloger):
    """Reads `package.json` manifests of installed npm packages."""

    name = "npm"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return package manifests directly inside a package directory under `node_modules`."""
        return (
            FileRequest(
                kind=self.name,
                pattern=r"(?:.*/)?node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json",
            ),
        )

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return one package per manifest that has a string `name` and `version`."""
        packages: list[Package] = []
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            try:
                manifest = json.loads(indexed.data)
            except (ValueError, UnicodeError) as exc:
                skipped.append(f"{indexed.path}: invalid package.json: {exc}")
                continue
            if not isinstance(manifest, dict):
                continue
            name = manifest.get("name")
            version = manifest.get("version")
            if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
                continue
            scope, _, bare = name.rpartition("/")
            packages.append(
                Package(
                    name=name,
                    version=version,
                    type="npm",
                    purl=make_purl("npm", scope or None, bare, version),
                    layer_digest=indexed.layer_digest,
                    locations=(indexed.path,),
                )
            )
        return CatalogerResult(tuple(packages), tuple(skipped))
