"""Reading SLSA provenance, vulnerability scan times and SBOM types from statements."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from regward.signatures import (
    PredicateError,
    check_scan_age,
    normalize_predicate_type,
    normalize_repository_uri,
    parse_statement,
    read_provenance,
    read_scan_finished,
    sbom_format,
)
from regward.signatures.predicates import SbomFormat, parse_rfc3339
from tests.support.sigstore import provenance_v02, provenance_v1, statement, vuln_predicate

DIGEST = "sha256:" + "ab" * 32
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_provenance_v1_builder_and_source() -> None:
    predicate = provenance_v1("https://github.com/actions/runner", "https://github.com/acme/app")
    read = read_provenance(
        parse_statement(statement(DIGEST, "https://slsa.dev/provenance/v1", predicate))
    )

    assert read.slsa_version == "1"
    assert read.builder_id == "https://github.com/actions/runner"
    assert read.source_repositories == ("https://github.com/acme/app",)


def test_provenance_v02_builder_and_source() -> None:
    predicate = provenance_v02("https://github.com/docker/buildx", "https://github.com/acme/app")
    read = read_provenance(
        parse_statement(statement(DIGEST, "https://slsa.dev/provenance/v0.2", predicate))
    )

    assert read.slsa_version == "0.2"
    assert read.builder_id == "https://github.com/docker/buildx"
    assert read.source_repositories == ("https://github.com/acme/app",)


def test_provenance_of_other_type_rejected() -> None:
    with pytest.raises(PredicateError, match="not SLSA provenance"):
        read_provenance(parse_statement(statement(DIGEST, "https://spdx.dev/Document")))


@pytest.mark.parametrize(
    ("uri", "normalized"),
    [
        ("git+https://github.com/acme/app@refs/heads/main", "https://github.com/acme/app"),
        ("https://GitHub.com/acme/app.git#refs/tags/v1", "https://github.com/acme/app"),
        ("https://github.com/acme/app/", "https://github.com/acme/app"),
        ("https://github.com/acme/app-evil", "https://github.com/acme/app-evil"),
    ],
)
def test_repository_normalization(uri: str, normalized: str) -> None:
    assert normalize_repository_uri(uri) == normalized


def test_scan_finished_with_nine_fraction_digits() -> None:
    finished = NOW - timedelta(hours=2)
    scan = parse_statement(
        statement(
            DIGEST, "https://cosign.sigstore.dev/attestation/vuln/v1", vuln_predicate(finished)
        )
    )

    assert read_scan_finished(scan) == finished.replace(microsecond=123456)


def test_scan_without_finish_time_rejected() -> None:
    scan = parse_statement(
        statement(DIGEST, "https://cosign.sigstore.dev/attestation/vuln/v1", {"metadata": {}})
    )

    with pytest.raises(PredicateError, match="scanFinishedOn"):
        read_scan_finished(scan)


@pytest.mark.parametrize(
    ("age", "problem"),
    [
        (timedelta(hours=23), None),
        (timedelta(hours=25), "more than maxAge"),
        (timedelta(minutes=-4), None),
        (timedelta(minutes=-6), "in the future"),
    ],
    ids=["fresh", "stale", "within-skew", "future"],
)
def test_scan_age(age: timedelta, problem: str | None) -> None:
    result = check_scan_age(NOW - age, now=NOW, max_age=timedelta(hours=24))

    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


@pytest.mark.parametrize("text", ["2026-12-04", "2026-12-04T12:00:00", "yesterday"])
def test_invalid_timestamps_rejected(text: str) -> None:
    with pytest.raises(PredicateError, match="invalid RFC 3339"):
        parse_rfc3339(text)


def test_offset_timestamp_converted_to_utc() -> None:
    assert parse_rfc3339("2026-12-04T14:00:00+02:00") == NOW


def test_sbom_formats() -> None:
    assert sbom_format("https://spdx.dev/Document") is SbomFormat.SPDX
    assert sbom_format("https://spdx.dev/Document/v2.3") is SbomFormat.SPDX
    assert sbom_format("https://cyclonedx.org/bom") is SbomFormat.CYCLONEDX
    assert sbom_format("https://slsa.dev/provenance/v1") is None


def test_pre_v2_cosign_predicate_types_normalized() -> None:
    assert (
        normalize_predicate_type("cosign.sigstore.dev/attestation/vuln/v1")
        == "https://cosign.sigstore.dev/attestation/vuln/v1"
    )
    assert normalize_predicate_type("https://spdx.dev/Document") == "https://spdx.dev/Document"
    assert json.loads(statement(DIGEST, "x"))["subject"][0]["digest"]["sha256"] == "ab" * 32
