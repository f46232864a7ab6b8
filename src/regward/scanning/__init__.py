"""regward.scanning: vulnerability scans of images for the gate and for `regward scan`.

It joins the cataloger (`regward.sbom`), the feed and matcher (`regward.vulns`) and the results
store (`regward.store.scans`). The gate uses `FeedProvider` and `ImageScanner`; the CLI uses
`parse_target`, `catalog_any`, `load_feed` and the output formats in `regward.scanning.report`.
"""

from __future__ import annotations

from regward.scanning.errors import ScanningError, TargetError
from regward.scanning.feeds import FeedProvider, default_store_dir, load_feed
from regward.scanning.scanner import ImageScanner, ScanResult, ScanStats
from regward.scanning.targets import CatalogedTarget, Target, TargetKind, catalog_any, parse_target

__all__ = [
    "CatalogedTarget",
    "FeedProvider",
    "ImageScanner",
    "ScanResult",
    "ScanStats",
    "ScanningError",
    "Target",
    "TargetError",
    "TargetKind",
    "catalog_any",
    "default_store_dir",
    "load_feed",
    "parse_target",
]
