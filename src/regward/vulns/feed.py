"""An OSV feed in memory: records loaded from a directory, a zip or Alpine secdb, indexed for matching.

Withdrawn records are dropped. Records that name the same vulnerability are grouped: `aliases` are
symmetric and transitive, and a record whose `upstream` lists exactly one id (`DEBIAN-CVE-x`,
`ALPINE-CVE-x` → `CVE-x`) is grouped with that id. A record with several upstream ids (an advisory
such as a DSA or USN) covers several vulnerabilities. The matcher folds it into the findings of
those vulnerabilities when all of them are found. The upstream relation is followed transitively
and tolerates cycles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regward.vulns import secdb
from regward.vulns.ecosystems import index_ecosystem, normalize_ecosystem, normalize_name
from regward.vulns.errors import FeedError, OSVRecordError
from regward.vulns.osv import Record, parse_record, parse_record_json, record_to_json

logger = logging.getLogger(__name__)

_RECORD_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class FeedLimits:
    """Size caps applied while reading feed files and archives."""

    max_record_bytes: int = 32 * 1024 * 1024
    """Largest single record file or zip member, in bytes."""
    max_total_bytes: int = 16 * 1024 * 1024 * 1024
    """Largest total of uncompressed zip members, in bytes."""
    max_records: int = 5_000_000
    """Most records one source may contain."""


@dataclass(frozen=True)
class SkippedRecord:
    """A file or archive member that was not loaded, and why."""

    source: str
    reason: str


class AliasGroups:
    """Groups of ids that name one vulnerability (union-find over aliases and single upstreams)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._parent: dict[str, str] = {}
        self._upstream: dict[str, tuple[str, ...]] = {}
        for record in records:
            self._find(record.id)
            for alias in record.aliases:
                self._union(record.id, alias)
            if len(record.upstream) == 1:
                self._union(record.id, record.upstream[0])
            if record.upstream:
                self._upstream[record.id] = record.upstream
        self._members: dict[str, set[str]] = defaultdict(set)
        for item in list(self._parent):
            self._members[self._find(item)].add(item)

    def _find(self, item: str) -> str:
        parent = self._parent.setdefault(item, item)
        root = item
        while parent != root:
            root = parent
            parent = self._parent[root]
        # Path compression keeps later lookups short.
        while item != root:
            item, self._parent[item] = self._parent[item], root
        return root

    def _union(self, left: str, right: str) -> None:
        left_root = self._find(left)
        right_root = self._find(right)
        if left_root != right_root:
            # The smaller id becomes the root, so grouping does not depend on input order.
            low, high = sorted((left_root, right_root))
            self._parent[high] = low

    def group_of(self, vuln_id: str) -> str:
        """Return the group key of an id (the id itself when nothing links it)."""
        if vuln_id not in self._parent:
            return vuln_id
        return self._find(vuln_id)

    def members(self, vuln_id: str) -> frozenset[str]:
        """Return every id in the group of `vuln_id`, record ids and plain alias ids alike."""
        if vuln_id not in self._parent:
            return frozenset((vuln_id,))
        return frozenset(self._members[self._find(vuln_id)])

    def upstream_closure(self, vuln_id: str) -> frozenset[str]:
        """Return the ids reachable through `upstream` from a record, following cycles only once."""
        seen: set[str] = set()
        pending = list(self._upstream.get(vuln_id, ()))
        while pending:
            current = pending.pop()
            if current in seen or current == vuln_id:
                continue
            seen.add(current)
            pending.extend(self._upstream.get(current, ()))
        return frozenset(seen)

    def upstream(self, vuln_id: str) -> tuple[str, ...]:
        """Return the record's own `upstream` list."""
        return self._upstream.get(vuln_id, ())


@dataclass(frozen=True)
class Feed:
    """A loaded OSV feed: active records by id, their index and alias groups, and a content revision."""

    records: Mapping[str, Record]
    """Active (not withdrawn) records by id."""
    revision: str
    """SHA-256 over the ids and contents of the active records; equal content gives an equal revision."""
    digests: Mapping[str, str]
    """SHA-256 of each active record's content, by id."""
    index: Mapping[tuple[str, str], tuple[str, ...]]
    """(index ecosystem, normalised name) → ids of records with an affected entry for that package."""
    groups: AliasGroups
    withdrawn: frozenset[str] = frozenset()
    """Ids of records dropped because they are withdrawn."""
    skipped: tuple[SkippedRecord, ...] = ()
    """Inputs that were not loaded."""
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)
    """Derived data (the matcher's prepared entries) that belongs to this feed and dies with it."""

    @classmethod
    def from_records(
        cls,
        records: Iterable[Record],
        *,
        digests: Mapping[str, str] | None = None,
        skipped: Iterable[SkippedRecord] = (),
    ) -> Feed:
        """Build a feed: drop withdrawn records, keep the latest `modified` per id, and index the rest.

        Args:
            records: the records, in any order.
            digests: content digests by id, when the caller has the source bytes; missing ones are
                computed from the record.
            skipped: inputs the caller could not load, kept for status reports.
        """
        active: dict[str, Record] = {}
        withdrawn: set[str] = set()
        for record in records:
            if record.withdrawn:
                withdrawn.add(record.id)
                logger.debug(
                    "dropping withdrawn record %s (withdrawn %s)", record.id, record.withdrawn
                )
                continue
            previous = active.get(record.id)
            if previous is not None and previous.modified > record.modified:
                continue
            active[record.id] = record
        withdrawn -= active.keys()
        all_digests = {
            record_id: (digests or {}).get(record_id) or record_digest(record)
            for record_id, record in active.items()
        }
        revision = hashlib.sha256()
        for record_id in sorted(active):
            revision.update(f"{record_id}\0{all_digests[record_id]}\n".encode())
        return cls(
            records=active,
            revision=revision.hexdigest(),
            digests=all_digests,
            index=_build_index(active.values()),
            groups=AliasGroups(active.values()),
            withdrawn=frozenset(withdrawn),
            skipped=tuple(skipped),
        )

    def lookup(self, ecosystem: str, name: str) -> tuple[Record, ...]:
        """Return the records with an affected entry for a package in an ecosystem."""
        key = (index_ecosystem(ecosystem), normalize_name(ecosystem, name))
        return tuple(self.records[record_id] for record_id in self.index.get(key, ()))

    def counts(self) -> dict[str, int]:
        """Return how many active records have affected entries in each normalised ecosystem."""
        counter: Counter[str] = Counter()
        for record in self.records.values():
            ecosystems = {
                normalize_ecosystem(affected.package.ecosystem)
                for affected in record.affected
                if affected.package is not None
            }
            counter.update(ecosystems or {"(none)"})
        return dict(sorted(counter.items()))

    def keys_of(self, record: Record) -> frozenset[tuple[str, str]]:
        """Return the (normalised ecosystem, normalised name) keys that a record's affected entries name."""
        return _record_keys(record)


def _record_keys(record: Record) -> frozenset[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for affected in record.affected:
        if affected.package is not None:
            ecosystem = affected.package.ecosystem
            keys.add((index_ecosystem(ecosystem), normalize_name(ecosystem, affected.package.name)))
    return frozenset(keys)


def _build_index(records: Iterable[Record]) -> dict[tuple[str, str], tuple[str, ...]]:
    index: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        for key in _record_keys(record):
            index[key].append(record.id)
    return {key: tuple(sorted(ids)) for key, ids in index.items()}


def record_digest(record: Record) -> str:
    """Return the SHA-256 of a record's content in canonical JSON."""
    return hashlib.sha256(
        json.dumps(asdict(record), sort_keys=True, default=str).encode()
    ).hexdigest()


def canonical_json(data: Any) -> bytes:
    """Return a decoded JSON value as canonical UTF-8 bytes (sorted keys, no spaces)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Loader:
    """Collects records, their source bytes and skipped inputs from any number of sources."""

    def __init__(self, limits: FeedLimits) -> None:
        self.limits = limits
        self.records: list[Record] = []
        self.raw: dict[str, bytes] = {}
        self.skipped: list[SkippedRecord] = []
        self.secdb_documents: list[Mapping[str, Any]] = []

    def add_bytes(self, source: str, data: bytes) -> None:
        if len(data) > self.limits.max_record_bytes:
            self.skip(
                source, f"{len(data)} bytes exceeds the limit of {self.limits.max_record_bytes}"
            )
            return
        if not source.endswith((".yaml", ".yml")) and data.lstrip()[:1] == b"{":
            # Most files hold one JSON record: validate the bytes directly, which is fastest.
            try:
                self.add_record(parse_record_json(data), data)
                return
            except OSVRecordError:
                pass
        try:
            decoded = (
                yaml.safe_load(data) if source.endswith((".yaml", ".yml")) else json.loads(data)
            )
        except (ValueError, yaml.YAMLError) as exc:
            self.skip(source, f"not valid JSON or YAML: {exc}")
            return
        self.add_object(source, decoded)

    def add_object(self, source: str, decoded: Any) -> None:
        if secdb.is_secdb_document(decoded):
            self.secdb_documents.append(decoded)
            return
        items = decoded if isinstance(decoded, list) else [decoded]
        for position, item in enumerate(items):
            label = source if len(items) == 1 else f"{source}[{position}]"
            try:
                record = parse_record(item)
            except OSVRecordError as exc:
                self.skip(label, str(exc))
                continue
            self.add_record(record, canonical_json(item))

    def add_record(self, record: Record, raw: bytes) -> None:
        if len(self.records) >= self.limits.max_records:
            raise FeedError(f"feed has more than {self.limits.max_records} records")
        self.records.append(record)
        self.raw[record.id] = raw

    def skip(self, source: str, reason: str) -> None:
        logger.debug("skipping %s: %s", source, reason)
        self.skipped.append(SkippedRecord(source, reason))

    def feed(self) -> Feed:
        if self.secdb_documents:
            for record in secdb.convert(self.secdb_documents):
                self.add_record(record, canonical_json(record_to_json(record)))
        if self.skipped:
            logger.info("feed load skipped %d inputs that are not OSV records", len(self.skipped))
        digests = {
            record_id: hashlib.sha256(raw).hexdigest() for record_id, raw in self.raw.items()
        }
        return Feed.from_records(self.records, digests=digests, skipped=self.skipped)


def _iter_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        if path.suffix in _RECORD_SUFFIXES and path.is_file():
            yield path


def _add_directory(loader: _Loader, directory: Path) -> None:
    for path in _iter_files(directory):
        try:
            size = path.stat().st_size
            if size > loader.limits.max_record_bytes:
                loader.skip(
                    str(path),
                    f"{size} bytes exceeds the limit of {loader.limits.max_record_bytes}",
                )
                continue
            data = path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read feed file {path}: {exc}") from exc
        loader.add_bytes(str(path.relative_to(directory)), data)


def _add_zip(loader: _Loader, archive: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            total = 0
            for member in bundle.infolist():
                if member.is_dir() or not member.filename.endswith(_RECORD_SUFFIXES):
                    continue
                if member.file_size > loader.limits.max_record_bytes:
                    loader.skip(
                        f"{archive.name}:{member.filename}",
                        f"{member.file_size} bytes exceeds the limit",
                    )
                    continue
                total += member.file_size
                if total > loader.limits.max_total_bytes:
                    raise FeedError(
                        f"{archive} expands to more than {loader.limits.max_total_bytes} bytes; refusing to read it"
                    )
                with bundle.open(member) as stream:
                    data = stream.read(loader.limits.max_record_bytes + 1)
                loader.add_bytes(f"{archive.name}:{member.filename}", data)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FeedError(f"cannot read feed archive {archive}: {exc}") from exc


def load(*sources: Path | str, limits: FeedLimits | None = None) -> Feed:
    """Load a feed from local sources: directories (searched recursively), `.zip` archives and single files.

    Directories may mix OSV records (JSON or YAML) and Alpine secdb documents; secdb documents are
    converted to `ALPINE-*` records. Files that are neither are skipped and listed in `Feed.skipped`.

    Raises:
        FeedError: a source is missing or cannot be read, or exceeds the limits.
    """
    feed, _ = load_raw(*sources, limits=limits)
    return feed


def load_raw(
    *sources: Path | str, limits: FeedLimits | None = None
) -> tuple[Feed, dict[str, bytes]]:
    """Load like `load`, and also return each record's JSON bytes (as read, or canonical).

    Raises:
        FeedError: a source is missing or cannot be read, or exceeds the limits.
    """
    loader = _Loader(limits or FeedLimits())
    for source in sources:
        path = Path(source)
        if path.is_dir():
            _add_directory(loader, path)
        elif path.is_file() and path.suffix == ".zip":
            _add_zip(loader, path)
        elif path.is_file():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FeedError(f"cannot read feed file {path}: {exc}") from exc
            loader.add_bytes(path.name, data)
        else:
            raise FeedError(f"feed source {path} does not exist")
    feed = loader.feed()
    logger.info(
        "loaded %d records (%d withdrawn dropped), revision %s",
        len(feed.records),
        len(feed.withdrawn),
        feed.revision[:12],
    )
    return feed, loader.raw


def load_bytes(
    items: Iterable[tuple[str, bytes]], limits: FeedLimits | None = None
) -> tuple[Feed, dict[str, bytes]]:
    """Build a feed from `(name, JSON or YAML bytes)` pairs, as `load_raw` does for files.

    Raises:
        FeedError: the input exceeds the limits.
    """
    loader = _Loader(limits or FeedLimits())
    for name, data in items:
        loader.add_bytes(name, data)
    return loader.feed(), loader.raw
