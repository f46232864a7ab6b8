"""Distro detection from `etc/os-release`, falling back to `usr/lib/os-release` (os-release(5))."""

from __future__ import annotations

import logging
import shlex

from regward.sbom.interface import FileRequest, FileSystem
from regward.sbom.model import Distro

logger = logging.getLogger(__name__)

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
REQUEST = FileRequest(kind="os-release", pattern=r"etc/os-release|usr/lib/os-release")
"""The files `detect_distro` reads; `etc/os-release` is often a symbolic link to the other."""


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release `KEY=value` lines, with shell quoting, into a dict."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw, comments=False, posix=True)
        except ValueError:
            logger.debug("invalid os-release value for %s: %r", key, raw)
            continue
        fields[key.strip()] = " ".join(words)
    return fields


def detect_distro(fs: FileSystem) -> Distro | None:
    """Return the image's distro from its os-release file, or `None` when it has none."""
    for path in OS_RELEASE_PATHS:
        found = fs.read(path)
        if found is None:
            continue
        fields = parse_os_release(found.data.decode("utf-8", errors="replace"))
        distro_id = fields.get("ID", "").lower()
        if not distro_id:
            continue
        return Distro(
            id=distro_id,
            version_id=fields.get("VERSION_ID", ""),
            pretty_name=fields.get("PRETTY_NAME", ""),
        )
    return None
