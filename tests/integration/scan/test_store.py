"""`ScanStore` on SQLite and PostgreSQL, and the scan tables against their migration."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from regward.sbom.interface import Catalog
from regward.sbom.model import Distro, Package
from regward.store import Base, Store, StoreError
from regward.store.scans import ScanStore, StoredFinding, catalog_from_json, catalog_to_json

SCAN_TABLES = {"image_sboms", "image_scans", "image_findings", "package_digests"}
DIGEST = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

DEBIAN = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
CATALOG = Catalog(
    packages=(
        Package(
            name="libssl3",
            version="3.0.11-1~deb12u2",
            type="deb",
            purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u2?distro=debian-12&upstream=openssl",
            source_name="openssl",
            source_version="3.0.11-1~deb12u2",
            layer_digest="sha256:" + "3" * 64,
            locations=("var/lib/dpkg/status",),
            distro=DEBIAN,
        ),
        Package(
            name="requests",
            version="2.19.0",
            type="pypi",
            purl="pkg:pypi/requests@2.19.0",
            locations=("usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA",),
        ),
    ),
    distro=DEBIAN,
    skipped=("usr/lib/broken.dist-info/METADATA: Python metadata without Name or Version",),
)
KEYS = [("Debian:12", "openssl", "3.0.11-1~deb12u2"), ("PyPI", "requests", "2.19.0")]


def finding(vulnerability_id: str, severity: str = "critical") -> StoredFinding:
    return StoredFinding(
        id=vulnerability_id,
        aliases=("CVE-2018-18074",),
        package=Package("requests", "2.19.0", "pypi", "pkg:pypi/requests@2.19.0"),
        ecosystem="PyPI",
        severity=severity,
        fixed=("2.20.0",),
        summary="leaks credentials on redirect",
    )


def test_catalog_json_round_trip() -> None:
    assert catalog_from_json(catalog_to_json(CATALOG)) == CATALOG


def test_catalog_json_rejects_other_version() -> None:
    document = catalog_to_json(CATALOG) | {"version": 99}

    with pytest.raises(StoreError, match="version 99"):
        catalog_from_json(document)


def test_catalog_and_findings_round_trip(store: Store) -> None:
    scans = ScanStore(store.engine)

    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=2.5, index_keys=KEYS)
    scans.save_findings(DIGEST, "rev-1", [finding("PYSEC-2018-28")], matched_at=NOW)
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.catalog == CATALOG
    assert loaded.error is None
    assert loaded.cataloged_at == NOW
    assert loaded.catalog_seconds == 2.5
    assert loaded.source == "catalog"
    assert loaded.feed_revision == "rev-1"
    assert loaded.matched_at == NOW
    assert loaded.findings == (finding("PYSEC-2018-28"),)


def test_catalog_source_recorded(store: Store) -> None:
    scans = ScanStore(store.engine)

    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=0.0, source="attested")
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.source == "attested"


def test_unknown_digest_loads_none(store: Store) -> None:
    assert ScanStore(store.engine).load(DIGEST) is None


def test_catalog_without_match(store: Store) -> None:
    scans = ScanStore(store.engine)

    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0)
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.feed_revision is None
    assert loaded.findings == ()


def test_new_match_replaces_findings(store: Store) -> None:
    scans = ScanStore(store.engine)
    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0)
    scans.save_findings(DIGEST, "rev-1", [finding("A"), finding("B")], matched_at=NOW)

    scans.save_findings(DIGEST, "rev-2", [finding("C", "low")], matched_at=NOW)
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.feed_revision == "rev-2"
    assert [item.id for item in loaded.findings] == ["C"]
    assert loaded.findings[0].severity == "low"


def test_new_catalog_drops_old_findings(store: Store) -> None:
    scans = ScanStore(store.engine)
    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0, index_keys=KEYS)
    scans.save_findings(DIGEST, "rev-1", [finding("A")], matched_at=NOW)

    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0, index_keys=KEYS[:1])
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.feed_revision is None
    assert loaded.findings == ()
    assert scans.digests_for_packages([("PyPI", "requests")]) == set()


def test_catalog_error_round_trip(store: Store) -> None:
    scans = ScanStore(store.engine)

    scans.save_catalog_error(DIGEST, "layer 0 is not a tar archive", cataloged_at=NOW, seconds=0.2)
    loaded = scans.load(DIGEST)

    assert loaded is not None
    assert loaded.catalog is None
    assert loaded.error == "layer 0 is not a tar archive"


def test_findings_need_a_catalog(store: Store) -> None:
    with pytest.raises(StoreError, match="save findings failed"):
        ScanStore(store.engine).save_findings(DIGEST, "rev-1", [finding("A")], matched_at=NOW)


def test_digests_for_packages(store: Store) -> None:
    scans = ScanStore(store.engine)
    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0, index_keys=KEYS)
    scans.save_catalog(
        OTHER, CATALOG, cataloged_at=NOW, seconds=1.0, index_keys=[("PyPI", "requests", "2.31.0")]
    )

    assert scans.digests_for_packages([("PyPI", "requests")]) == {DIGEST, OTHER}
    assert scans.digests_for_packages([("Debian:12", "openssl")]) == {DIGEST}
    assert scans.digests_for_packages([("Debian:12", "libssl3"), ("npm", "requests")]) == set()
    assert scans.digests_for_packages([]) == set()


def test_invalid_severity_rejected(store: Store) -> None:
    scans = ScanStore(store.engine)
    scans.save_catalog(DIGEST, CATALOG, cataloged_at=NOW, seconds=1.0)

    with pytest.raises(StoreError, match="save findings failed"):
        scans.save_findings(DIGEST, "rev-1", [finding("A", "severe")], matched_at=NOW)


def test_scan_tables_created(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())

    assert tables >= SCAN_TABLES


def test_scan_models_match_migration(store: Store) -> None:
    def scan_objects(
        item: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = getattr(item, "table", item)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return table_name in SCAN_TABLES

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": scan_objects, "compare_type": True}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_downgrade_drops_scan_tables(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from regward.store.db import MIGRATIONS_DIR

    with Store(database_url) as opened:
        opened.migrate()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("path_separator", "os")
        with opened.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        tables = set(inspect(opened.engine).get_table_names())
        with opened.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    assert tables.isdisjoint(SCAN_TABLES)
    assert version == "0003"
