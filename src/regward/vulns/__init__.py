"""regward's vulnerability engine: OSV feeds, version ordering per ecosystem, and package matching.

Example:
    from regward.vulns import FeedStore, match

    store = FeedStore("/var/lib/regward/feed")
    store.sync("https://osv-vulnerabilities.storage.googleapis.com/", ecosystems=["PyPI"])
    findings = match(store.load(), packages)
"""

from __future__ import annotations

from regward.vulns.ecosystems import (
    PackageQuery,
    index_ecosystem,
    normalize_ecosystem,
    normalize_name,
    queries_for,
)
from regward.vulns.errors import (
    FeedError,
    FeedSyncError,
    InvalidVersionError,
    OSVRecordError,
    UnsupportedEcosystemError,
    VersionError,
    VulnsError,
)
from regward.vulns.feed import (
    AliasGroups,
    Feed,
    FeedLimits,
    SkippedRecord,
    load,
    load_bytes,
    load_raw,
)
from regward.vulns.feedstore import FeedStatus, FeedStore, HttpLimits, SyncResult
from regward.vulns.matcher import (
    Finding,
    MatchNote,
    MatchOptions,
    MatchReport,
    MissingEpoch,
    NotEvaluated,
    UnparseableRange,
    match,
    match_report,
)
from regward.vulns.osv import (
    Affected,
    AffectedPackage,
    Event,
    EventKind,
    Range,
    RangeType,
    Record,
    SeverityScore,
    parse_record,
    parse_record_json,
    record_to_json,
)
from regward.vulns.secdb import load_secdb
from regward.vulns.severity import Severity, record_severity

__all__ = [
    "Affected",
    "AffectedPackage",
    "AliasGroups",
    "Event",
    "EventKind",
    "Feed",
    "FeedError",
    "FeedLimits",
    "FeedStatus",
    "FeedStore",
    "FeedSyncError",
    "Finding",
    "HttpLimits",
    "InvalidVersionError",
    "MatchNote",
    "MatchOptions",
    "MatchReport",
    "MissingEpoch",
    "NotEvaluated",
    "OSVRecordError",
    "PackageQuery",
    "Range",
    "RangeType",
    "Record",
    "Severity",
    "SeverityScore",
    "SkippedRecord",
    "SyncResult",
    "UnparseableRange",
    "UnsupportedEcosystemError",
    "VersionError",
    "VulnsError",
    "index_ecosystem",
    "load",
    "load_bytes",
    "load_raw",
    "load_secdb",
    "match",
    "match_report",
    "normalize_ecosystem",
    "normalize_name",
    "parse_record",
    "parse_record_json",
    "queries_for",
    "record_severity",
    "record_to_json",
]
