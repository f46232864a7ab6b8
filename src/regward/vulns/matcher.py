"""Match cataloged packages against a feed: OSV range evaluation per ecosystem, findings per vulnerability.

`match()` is CPU-bound and does no I/O, so the gate can run it in a worker thread. The feed's index
is keyed by (ecosystem, name); each key's affected entries are parsed once, on first use, and kept in
`Feed.cache`.

Evaluation follows the OSV schema's "Evaluation" section: a version is affected when it equals an
entry of `versions` or falls in an ECOSYSTEM or SEMVER range. GIT ranges are skipped without hiding
the ranges after them. A range whose event versions the ecosystem's grammar rejects is not evaluated
and is reported in `MatchReport.unparseable`, because ordering a malformed version silently gives
wrong results (an apk fix spelled `20.10.11.r0` sorts after `20.10.11-r0`).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from regward.sbom.model import Package
from regward.vulns import versions
from regward.vulns.ecosystems import (
    PackageQuery,
    distro_of,
    ecosystem_base,
    index_ecosystem,
    normalize_name,
    queries_for,
)
from regward.vulns.errors import InvalidVersionError, UnsupportedEcosystemError
from regward.vulns.feed import Feed
from regward.vulns.osv import Affected, EventKind, RangeType, Record
from regward.vulns.severity import Severity, record_severity
from regward.vulns.versions import Ordering, VersionKey

logger = logging.getLogger(__name__)

__all__ = [
    "Finding",
    "MatchNote",
    "MatchOptions",
    "MatchReport",
    "MissingEpoch",
    "NotEvaluated",
    "Severity",
    "UnparseableRange",
    "match",
    "match_report",
]

_CACHE_KEY = "regward.vulns.matcher"
_LIMIT_NONE = "*"


class MatchNote(enum.StrEnum):
    """Facts about a finding that a policy or a reader may want to weigh."""

    OPEN_ENDED = "open-ended"
    """A matching range has no `fixed` or `last_affected` event: every later version is affected too."""
    GO_PSEUDO_VERSION = "go-pseudo-version"
    """The installed Go module is a pseudo-version (a commit), ordered as a pre-release of the
    version it names. The commit may already contain the fix, so the finding has low confidence."""
    INFORMATIONAL = "informational"
    """The advisory is informational (RustSec `unmaintained`, `unsound`, `notice`), not a vulnerability."""
    BACKPORT_RELEASE = "backport-release"
    """A Debian `~bpoN` backport was judged by release N+1's data, which its sources come from."""


class MissingEpoch(enum.StrEnum):
    """Rule for comparing an RPM version without an epoch with an advisory version that has one."""

    ZERO = "zero"
    """A missing epoch is 0, as rpm itself treats it."""
    AUTO = "auto"
    """A missing epoch takes the advisory's epoch: SBOMs and some catalogers drop epochs, and treating
    them as 0 flags every package whose advisory carries an epoch."""


@dataclass(frozen=True)
class MatchOptions:
    """Choices that change how packages are matched."""

    missing_epoch: MissingEpoch = MissingEpoch.AUTO
    """RPM packages without an epoch: compare with the advisory's epoch (`auto`) or with 0 (`zero`)."""
    ignore_installed_epoch_for: frozenset[str] = frozenset()
    """os-release `ID`s (such as `raspbian`) whose downstream builds raise the epoch of the distro
    they rebuild. For these, an installed deb's epoch is replaced by the advisory's epoch, so
    `1:2.0+rpt1` is judged as `2.0+rpt1` against Debian's data."""
    ignore_go_pseudo_versions: bool = False
    """Do not evaluate Go modules installed at a pseudo-version (they are reported as not evaluated)."""


@dataclass(frozen=True)
class Finding:
    """One vulnerability found in one package; records that alias each other form one finding."""

    id: str
    """The id of a matched feed record (the smallest, for a stable choice)."""
    aliases: tuple[str, ...]
    """Every other id of the vulnerability: other matched records, aliases and upstream ids."""
    package: Package
    severity: Severity
    fixed: tuple[str, ...]
    """Versions that fix the vulnerability and are newer than the installed one, in version order."""
    summary: str
    record_ids: tuple[str, ...] = ()
    """Ids of the feed records that matched this package and were merged into this finding."""
    ecosystem: str = ""
    """The OSV ecosystem whose data matched, such as `Debian:12`."""
    notes: tuple[MatchNote, ...] = ()


@dataclass(frozen=True)
class UnparseableRange:
    """A range that was not evaluated for a package because an event version is malformed."""

    record_id: str
    package: Package
    ecosystem: str
    version: str
    """The malformed version from the advisory."""
    reason: str


@dataclass(frozen=True)
class NotEvaluated:
    """A package that was not matched at all, and why."""

    package: Package
    reason: str


@dataclass(frozen=True)
class MatchReport:
    """Findings, plus what could not be evaluated."""

    findings: tuple[Finding, ...]
    unparseable: tuple[UnparseableRange, ...] = ()
    not_evaluated: tuple[NotEvaluated, ...] = ()


# --- prepared feed data --------------------------------------------------------------------------


@dataclass
class _Event:
    kind: EventKind
    raw: str
    key: VersionKey | None
    """None for `introduced: 0` and `limit: *`."""
    epoch: str = ""
    """The explicit epoch of the version (`1` in `1:2.0-1`), for the missing-epoch rules."""


@dataclass
class _Range:
    ordering: Ordering
    events: list[_Event]
    limits: list[_Event]
    open_ended: bool
    problem: tuple[str, str] | None = None
    """(version, reason) when the range cannot be evaluated."""


@dataclass
class _Entry:
    record_id: str
    ecosystem: str
    ordering: Ordering | None
    versions: frozenset[str]
    version_keys: list[VersionKey]
    ranges: list[_Range]
    informational: bool


@dataclass
class _Prepared:
    entries: dict[tuple[str, str], list[_Entry]] = field(default_factory=dict)
    severities: dict[str, Severity | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _prepared(feed: Feed) -> _Prepared:
    prepared = feed.cache.get(_CACHE_KEY)
    if not isinstance(prepared, _Prepared):
        prepared = feed.cache.setdefault(_CACHE_KEY, _Prepared())
    assert isinstance(prepared, _Prepared)
    return prepared


def _prepare_event(ordering: Ordering, kind: EventKind, raw: str) -> _Event:
    if (kind == EventKind.INTRODUCED and raw == "0") or (
        kind == EventKind.LIMIT and raw == _LIMIT_NONE
    ):
        return _Event(kind, raw, None)
    epoch = raw.split(":", 1)[0] if _has_epoch(raw) else ""
    return _Event(kind, raw, ordering.key(raw), epoch)


def _prepare_range(ordering: Ordering, events: Sequence[tuple[EventKind, str]]) -> _Range:
    prepared: list[_Event] = []
    for kind, raw in events:
        if (
            not ordering.is_canonical(raw)
            and not (kind == EventKind.INTRODUCED and raw == "0")
            and raw != _LIMIT_NONE
        ):
            return _Range(ordering, [], [], False, (raw, f"not a valid {ordering.family} version"))
        try:
            prepared.append(_prepare_event(ordering, kind, raw))
        except InvalidVersionError as exc:
            return _Range(ordering, [], [], False, (raw, exc.reason))
    limits = [event for event in prepared if event.kind == EventKind.LIMIT]
    ordered = sorted(
        (event for event in prepared if event.kind != EventKind.LIMIT),
        key=_EventSortKey,
    )
    open_ended = not any(
        event.kind in (EventKind.FIXED, EventKind.LAST_AFFECTED) for event in ordered
    )
    return _Range(ordering, ordered, limits, open_ended)


class _EventSortKey:
    """Sorts events by version with `introduced: 0` first."""

    __slots__ = ("event",)

    def __init__(self, event: _Event) -> None:
        self.event = event

    def __lt__(self, other: _EventSortKey) -> bool:
        if self.event.key is None:
            return other.event.key is not None
        if other.event.key is None:
            return False
        return bool(self.event.key < other.event.key)


def _prepare_entry(record: Record, affected: Affected) -> _Entry | None:
    if affected.package is None:
        return None
    ecosystem = affected.package.normalized_ecosystem
    try:
        ordering: Ordering | None = versions.ordering_for(ecosystem)
    except UnsupportedEcosystemError:
        ordering = None
    ranges: list[_Range] = []
    for item in affected.ranges:
        if item.type == RangeType.ECOSYSTEM and ordering is not None:
            range_ordering = ordering
        elif item.type == RangeType.SEMVER:
            range_ordering = versions.SEMVER
        else:
            # GIT ranges need the commit graph; unknown types cannot be evaluated. Later ranges still are.
            continue
        ranges.append(
            _prepare_range(range_ordering, [(event.kind, event.version) for event in item.events])
        )
    version_keys: list[VersionKey] = []
    if ordering is not None:
        for raw in affected.versions:
            try:
                version_keys.append(ordering.key(raw))
            except InvalidVersionError:
                logger.debug("%s lists unparseable %s version %r", record.id, ecosystem, raw)
    informational = bool(affected.database_specific.get("informational"))
    return _Entry(
        record.id,
        ecosystem,
        ordering,
        frozenset(affected.versions),
        version_keys,
        ranges,
        informational,
    )


def _entries_for(feed: Feed, prepared: _Prepared, ecosystem: str, name: str) -> list[_Entry]:
    key = (index_ecosystem(ecosystem), normalize_name(ecosystem, name))
    found = prepared.entries.get(key)
    if found is not None:
        return found
    entries: list[_Entry] = []
    for record_id in feed.index.get(key, ()):
        record = feed.records[record_id]
        for affected in record.affected:
            if affected.package is None:
                continue
            entry_key = (
                index_ecosystem(affected.package.ecosystem),
                normalize_name(affected.package.ecosystem, affected.package.name),
            )
            if entry_key == key:
                entry = _prepare_entry(record, affected)
                if entry is not None:
                    entries.append(entry)
    with prepared.lock:
        return prepared.entries.setdefault(key, entries)


def _severity(feed: Feed, prepared: _Prepared, record_id: str) -> Severity | None:
    if record_id not in prepared.severities:
        record = feed.records.get(record_id)
        prepared.severities[record_id] = record_severity(record) if record is not None else None
    return prepared.severities[record_id]


# --- evaluation ----------------------------------------------------------------------------------


class _Installed:
    """The installed version, parsed lazily per ordering, with the epoch rules of `MatchOptions`."""

    def __init__(self, version: str, ecosystem: str, options: MatchOptions, distro_id: str) -> None:
        self.version = version
        self.keys: dict[tuple[str, str], VersionKey | None] = {}
        base = ecosystem_base(ecosystem)
        try:
            is_rpm = versions.ordering_for(ecosystem).family == versions.RPM.family
        except UnsupportedEcosystemError:
            is_rpm = False
        has_epoch = _has_epoch(version)
        self.borrow_epoch = False
        self.drop_epoch = False
        if is_rpm and not has_epoch and options.missing_epoch == MissingEpoch.AUTO:
            self.borrow_epoch = True
        if base in ("Debian", "Ubuntu") and distro_id in options.ignore_installed_epoch_for:
            self.borrow_epoch = True
            self.drop_epoch = has_epoch

    def key(self, ordering: Ordering, epoch: str = "") -> VersionKey | None:
        text = self.version
        if self.drop_epoch:
            text = text.split(":", 1)[1]
        if self.borrow_epoch and epoch:
            text = f"{epoch}:{text}"
        cache_key = (ordering.family, text)
        if cache_key not in self.keys:
            try:
                self.keys[cache_key] = ordering.key(text)
            except InvalidVersionError:
                self.keys[cache_key] = None
        return self.keys[cache_key]


def _has_epoch(version: str) -> bool:
    head, sep, _ = version.partition(":")
    return bool(sep) and head.isdigit()


def _compare_installed(installed: _Installed, ordering: Ordering, event: _Event) -> int | None:
    """Compare the installed version with an event version; None when the installed one cannot be parsed."""
    key = installed.key(ordering, event.epoch if installed.borrow_epoch else "")
    if key is None or event.key is None:
        return None
    if key < event.key:
        return -1
    if event.key < key:
        return 1
    return 0


def _in_range(installed: _Installed, item: _Range) -> bool | None:
    """Evaluate one range per the OSV schema; None when the installed version cannot be parsed."""
    if item.limits and all(limit.key is not None for limit in item.limits):
        below_any = False
        for limit in item.limits:
            result = _compare_installed(installed, item.ordering, limit)
            if result is None:
                return None
            below_any = below_any or result < 0
        if not below_any:
            return False
    affected = False
    for event in item.events:
        if event.key is None:
            affected = True
            continue
        result = _compare_installed(installed, item.ordering, event)
        if result is None:
            return None
        if event.kind == EventKind.INTRODUCED and result >= 0:
            affected = True
        elif event.kind == EventKind.FIXED and result >= 0:
            affected = False
        elif event.kind == EventKind.LAST_AFFECTED and result > 0:
            affected = False
    return affected


@dataclass
class _EntryResult:
    matched: bool = False
    open_ended: bool = False
    fixed: list[tuple[Ordering, str, VersionKey]] = field(default_factory=list)
    unparseable: list[tuple[str, str]] = field(default_factory=list)
    installed_invalid: bool = False


def _evaluate(entry: _Entry, installed: _Installed) -> _EntryResult:
    result = _EntryResult()
    if installed.version in entry.versions:
        result.matched = True
    elif entry.ordering is not None and entry.version_keys:
        key = installed.key(entry.ordering)
        if key is not None and any(key == listed for listed in entry.version_keys):
            result.matched = True
    for item in entry.ranges:
        if item.problem is not None:
            result.unparseable.append(item.problem)
            continue
        inside = _in_range(installed, item)
        if inside is None:
            result.installed_invalid = True
            continue
        if inside:
            result.matched = True
            result.open_ended = result.open_ended or item.open_ended
        for event in item.events:
            if event.kind == EventKind.FIXED and event.key is not None:
                comparison = _compare_installed(installed, item.ordering, event)
                if comparison is not None and comparison < 0:
                    result.fixed.append((item.ordering, event.raw, event.key))
    return result


# --- findings ------------------------------------------------------------------------------------


@dataclass
class _Match:
    record_id: str
    ecosystem: str
    fixed: list[tuple[Ordering, str, VersionKey]]
    notes: set[MatchNote]


def _match_query(
    feed: Feed,
    prepared: _Prepared,
    package: Package,
    query: PackageQuery,
    options: MatchOptions,
    unparseable: list[UnparseableRange],
) -> tuple[list[_Match], bool]:
    """Match one query; return the matched records and whether the feed has any record for it."""
    per_ecosystem = [
        (ecosystem, _entries_for(feed, prepared, ecosystem, query.name))
        for ecosystem in query.ecosystems
    ]
    if not any(entries for _, entries in per_ecosystem):
        return [], False
    distro = distro_of(package)
    distro_id = distro.id.lower() if distro is not None else ""
    chosen: dict[str, tuple[str, list[_Entry]]] = {}
    for ecosystem, entries in per_ecosystem:
        by_record: dict[str, list[_Entry]] = defaultdict(list)
        for entry in entries:
            by_record[entry.record_id].append(entry)
        for record_id, record_entries in by_record.items():
            # A record is judged by its entries for the first listed ecosystem it has.
            chosen.setdefault(record_id, (ecosystem, record_entries))
    matches: list[_Match] = []
    installed_by_ecosystem: dict[str, _Installed] = {}
    for record_id, (ecosystem, entries) in sorted(chosen.items()):
        installed = installed_by_ecosystem.get(ecosystem)
        if installed is None:
            installed = _Installed(query.version, ecosystem, options, distro_id)
            installed_by_ecosystem[ecosystem] = installed
        notes: set[MatchNote] = set()
        fixed: list[tuple[Ordering, str, VersionKey]] = []
        matched = False
        for entry in entries:
            result = _evaluate(entry, installed)
            unparseable.extend(
                UnparseableRange(record_id, package, ecosystem, version, reason)
                for version, reason in result.unparseable
            )
            if result.installed_invalid:
                logger.debug(
                    "cannot order %s version %r of %s for %s",
                    ecosystem,
                    query.version,
                    package.name,
                    record_id,
                )
            if not result.matched:
                continue
            matched = True
            fixed.extend(result.fixed)
            if result.open_ended:
                notes.add(MatchNote.OPEN_ENDED)
            if entry.informational:
                notes.add(MatchNote.INFORMATIONAL)
        if matched:
            if (
                ecosystem != query.ecosystems[-1]
                and ecosystem_base(ecosystem) == "Debian"
                and len(query.ecosystems) > 1
            ):
                notes.add(MatchNote.BACKPORT_RELEASE)
            matches.append(_Match(record_id, ecosystem, fixed, notes))
    return matches, True


def _build_findings(
    feed: Feed,
    prepared: _Prepared,
    package: Package,
    matches: list[_Match],
    extra_notes: set[MatchNote],
) -> list[Finding]:
    groups = feed.groups
    by_group: dict[str, list[_Match]] = defaultdict(list)
    bundles: list[_Match] = []
    for item in matches:
        if len(groups.upstream(item.record_id)) > 1:
            bundles.append(item)
        else:
            by_group[groups.group_of(item.record_id)].append(item)
    folded: dict[str, list[str]] = defaultdict(list)
    for bundle in bundles:
        targets = {
            groups.group_of(upstream_id) for upstream_id in groups.upstream(bundle.record_id)
        }
        if targets and targets <= by_group.keys():
            # Every vulnerability the advisory covers is already a finding: the advisory joins them.
            for target in targets:
                folded[target].append(bundle.record_id)
        else:
            by_group[groups.group_of(bundle.record_id)].append(bundle)
    findings = [
        _finding(feed, prepared, package, group, items, folded.get(group, []), extra_notes)
        for group, items in by_group.items()
    ]
    return sorted(findings, key=lambda finding: finding.id)


def _finding(
    feed: Feed,
    prepared: _Prepared,
    package: Package,
    group: str,
    items: list[_Match],
    folded: list[str],
    extra_notes: set[MatchNote],
) -> Finding:
    record_ids = sorted({item.record_id for item in items})
    finding_id = record_ids[0]

    # Every other name of the vulnerability: group members, aliases, upstream ids, folded advisories.
    names: set[str] = set(feed.groups.members(group)) | set(folded)
    for record_id in record_ids:
        record = feed.records[record_id]
        names.update(record.aliases)
        names.update(feed.groups.upstream_closure(record_id))
    names.discard(finding_id)

    # The matched records' own severity, else the best one among alias records in the feed.
    severity = max(
        (_severity(feed, prepared, record_id) or Severity.UNKNOWN for record_id in record_ids),
        default=Severity.UNKNOWN,
    )
    if severity == Severity.UNKNOWN:
        alias_records = [name for name in sorted(names) if name in feed.records]
        severity = max(
            (_severity(feed, prepared, name) or Severity.UNKNOWN for name in alias_records),
            default=Severity.UNKNOWN,
        )

    fixed = _fixed_versions([fix for item in items for fix in item.fixed])
    notes: set[MatchNote] = set(extra_notes)
    for item in items:
        notes.update(item.notes)

    record = feed.records[finding_id]
    summary = record.summary or record.details.strip().split("\n", 1)[0][:200]
    return Finding(
        id=finding_id,
        aliases=tuple(sorted(names)),
        package=package,
        severity=severity,
        fixed=fixed,
        summary=summary,
        record_ids=tuple(sorted(set(record_ids) | set(folded))),
        ecosystem=items[0].ecosystem,
        notes=tuple(sorted(notes)),
    )


def _fixed_versions(fixes: list[tuple[Ordering, str, VersionKey]]) -> tuple[str, ...]:
    unique: dict[str, tuple[Ordering, VersionKey]] = {}
    for ordering, raw, key in fixes:
        unique.setdefault(raw, (ordering, key))
    families = {ordering.family for ordering, _ in unique.values()}
    if len(families) > 1:
        # SEMVER and ECOSYSTEM keys of one package do not compare; list them by string.
        return tuple(sorted(unique))
    sort_key: Callable[[str], VersionKey] = lambda raw: unique[raw][1]  # noqa: E731
    return tuple(sorted(unique, key=sort_key))


def match_report(
    feed: Feed, packages: Iterable[Package], options: MatchOptions | None = None
) -> MatchReport:
    """Match packages against the feed and report findings, unparseable ranges and skipped packages."""
    options = options or MatchOptions()
    prepared = _prepared(feed)
    findings: list[Finding] = []
    unparseable: list[UnparseableRange] = []
    not_evaluated: list[NotEvaluated] = []
    for package in packages:
        if not package.version:
            not_evaluated.append(NotEvaluated(package, "no version"))
            continue
        queries = queries_for(package)
        if not queries:
            not_evaluated.append(
                NotEvaluated(
                    package, f"no OSV ecosystem for package type {package.type!r} and its distro"
                )
            )
            continue
        extra_notes: set[MatchNote] = set()
        if queries[0].ecosystems == ("Go",) and versions.is_go_pseudo_version(queries[0].version):
            if options.ignore_go_pseudo_versions:
                not_evaluated.append(
                    NotEvaluated(package, "Go pseudo-version, ignored by the match options")
                )
                continue
            extra_notes.add(MatchNote.GO_PSEUDO_VERSION)
        for query in queries:
            matches, found_records = _match_query(
                feed, prepared, package, query, options, unparseable
            )
            if found_records:
                findings.extend(_build_findings(feed, prepared, package, matches, extra_notes))
                break
    return MatchReport(tuple(findings), tuple(unparseable), tuple(not_evaluated))


def match(
    feed: Feed, packages: Iterable[Package], options: MatchOptions | None = None
) -> list[Finding]:
    """Return the findings for packages, one per vulnerability and package.

    Example:
        findings = await asyncio.to_thread(match, feed, sbom_packages)
    """
    return list(match_report(feed, packages, options).findings)
