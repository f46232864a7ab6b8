"""Images with Python packages from the test feed, and the gate and store fixtures reused here."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import asset
from tests.integration.gate.conftest import keys, sign  # noqa: F401
from tests.integration.store.conftest import (  # noqa: F401
    database_url,
    postgres_database,
    store,
)
from tests.support.layers import gzip_layer, make_tar

SITE_PACKAGES = "usr/lib/python3/dist-packages"


def feed_dir() -> Path:
    """Return the test feed: six PyPI OSV records (see its SOURCES.md)."""
    return asset("vulns-feed")


def dist_info(name: str, version: str) -> dict[str, bytes]:
    """Return the `*.dist-info/METADATA` file of an installed Python distribution."""
    path = f"{SITE_PACKAGES}/{name.replace('-', '_')}-{version}.dist-info/METADATA"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\n"
    return {path: metadata.encode()}


def python_layer(*packages: tuple[str, str], extra: dict[str, bytes] | None = None) -> bytes:
    """Return a gzip layer holding the metadata of `packages` (name, version)."""
    files: dict[str, bytes] = {"etc/hostname": b"scan-test\n"}
    for name, version in packages:
        files.update(dist_info(name, version))
    files.update(extra or {})
    return gzip_layer(make_tar(files))


REQUESTS = ("requests", "2.19.0")
"""Affected by PYSEC-2018-28 and PYSEC-2023-74, which state no severity."""
SEARCHOR = ("searchor", "2.4.0")
"""Affected by PYSEC-2023-262 (critical, fixed in 2.4.2)."""
JSON_LOGIC = ("json-logic", "0.6.3")
"""Affected by PYSEC-2023-209 (critical, no fix)."""
GITPYTHON = ("GitPython", "3.1.30")
"""Affected by PYSEC-2023-161 (high) and PYSEC-2023-165 (medium)."""
