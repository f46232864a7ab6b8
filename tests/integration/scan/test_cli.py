"""`regward scan`, `regward sbom` and `regward feed` on images in a registry, an OCI layout, a
docker-archive file and an SBOM file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regward.cli.main import main
from tests.integration.scan.conftest import (
    GITPYTHON,
    JSON_LOGIC,
    REQUESTS,
    SEARCHOR,
    feed_dir,
    python_layer,
)
from tests.support.layers import push_layers, write_docker_archive, write_oci_layout
from tests.support.registry import RunningRegistry


def scan_json(
    capsys: pytest.CaptureFixture[str], target: str, *extra: str
) -> tuple[int, dict[str, object]]:
    status = main(["scan", target, "--feed", str(feed_dir()), "--format", "json", *extra])
    return status, json.loads(capsys.readouterr().out)


def finding_ids(document: dict[str, object]) -> set[str]:
    findings = document["findings"]
    assert isinstance(findings, list)
    return {item["id"] for item in findings}


@pytest.mark.registry
def test_scan_registry_finds_pysec_2018_28(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push_layers(registry.url, "team/requests", "v1", [python_layer(REQUESTS)])

    status, document = scan_json(capsys, f"{registry.host}/team/requests:v1")

    assert status == 0
    assert document["target"] == f"{registry.host}/team/requests:v1"
    assert document["digest"] == digest
    assert "PYSEC-2018-28" in finding_ids(document)
    findings = document["findings"]
    assert isinstance(findings, list)
    found = next(item for item in findings if item["id"] == "PYSEC-2018-28")
    assert found == {
        "id": "PYSEC-2018-28",
        "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
        "package": {
            "name": "requests",
            "version": "2.19.0",
            "ecosystem": "PyPI",
            "purl": "pkg:pypi/requests@2.19.0",
        },
        "severity": "unknown",
        "fixed": ["2.20.0"],
    }


def test_scan_oci_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(REQUESTS)], tag="v1")

    status, document = scan_json(capsys, f"oci:{tmp_path / 'layout'}:v1")

    assert status == 0
    assert finding_ids(document) == {"PYSEC-2018-28", "PYSEC-2023-74"}
    assert document["digest"] is None


def test_scan_docker_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "image.tar"
    write_docker_archive(archive, [python_layer(REQUESTS)])

    status, document = scan_json(capsys, f"docker-archive:{archive}")

    assert status == 0
    assert "PYSEC-2018-28" in finding_ids(document)


def test_scan_sbom_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(REQUESTS, SEARCHOR)], tag="v1")
    sbom = tmp_path / "sbom.spdx.json"
    assert main(["sbom", f"oci:{tmp_path / 'layout'}", "--output", str(sbom)]) == 0
    capsys.readouterr()

    status, document = scan_json(capsys, f"sbom:{sbom}")

    assert status == 0
    assert finding_ids(document) == {"PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2023-262"}


def test_scan_fail_on_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(GITPYTHON)], tag="v1")
    target = f"oci:{tmp_path / 'layout'}"

    exits = {
        threshold: main(["scan", target, "--feed", str(feed_dir()), "--fail-on", threshold])
        for threshold in ("any", "medium", "high", "critical")
    }

    assert exits == {"any": 1, "medium": 1, "high": 1, "critical": 0}
    assert "PYSEC-2023-161" in capsys.readouterr().out


def test_scan_without_findings_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(("requests", "2.32.3"))], tag="v1")

    status, document = scan_json(capsys, f"oci:{tmp_path / 'layout'}", "--fail-on", "any")

    assert status == 0
    assert document["findings"] == []


def test_scan_sarif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(SEARCHOR, JSON_LOGIC)], tag="v1")

    status = main(
        ["scan", f"oci:{tmp_path / 'layout'}", "--feed", str(feed_dir()), "--format", "sarif"]
    )
    log = json.loads(capsys.readouterr().out)

    assert status == 0
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} == {
        "PYSEC-2023-262",
        "PYSEC-2023-209",
    }
    levels = {result["ruleId"]: result["level"] for result in run["results"]}
    assert levels == {"PYSEC-2023-262": "error", "PYSEC-2023-209": "error"}
    location = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert location.endswith(".dist-info/METADATA")


def test_scan_cyclonedx_links_components(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(SEARCHOR)], tag="v1")

    status = main(
        ["scan", f"oci:{tmp_path / 'layout'}", "--feed", str(feed_dir()), "--format", "cyclonedx"]
    )
    document = json.loads(capsys.readouterr().out)

    assert status == 0
    assert document["specVersion"] == "1.6"
    component = next(item for item in document["components"] if item["name"] == "searchor")
    vulnerability = document["vulnerabilities"][0]
    assert vulnerability["id"] == "PYSEC-2023-262"
    assert vulnerability["ratings"][0]["severity"] == "critical"
    assert vulnerability["affects"] == [{"ref": component["bom-ref"]}]
    assert vulnerability["recommendation"] == "upgrade to 2.4.2"


def test_scan_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(SEARCHOR)], tag="v1")

    status = main(["scan", f"oci:{tmp_path / 'layout'}", "--feed", str(feed_dir())])
    captured = capsys.readouterr()

    assert status == 0
    assert "PYSEC-2023-262" in captured.out
    assert "critical" in captured.out
    assert "1 findings in 1 of 1 packages" in captured.err


def test_scan_without_feed_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGWARD_FEED", raising=False)

    status = main(["scan", f"oci:{tmp_path}"])

    assert status == 2
    assert "missing feed" in capsys.readouterr().err


def test_scan_missing_feed_path_is_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(REQUESTS)], tag="v1")

    status = main(["scan", f"oci:{tmp_path / 'layout'}", "--feed", str(tmp_path / "absent")])

    assert status == 2
    assert "does not exist" in capsys.readouterr().err


def test_scan_unreadable_target_is_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["scan", f"docker-archive:{tmp_path / 'absent.tar'}", "--feed", str(feed_dir())])

    assert status == 2
    assert "absent.tar" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("sbom_format", "marker"), [("spdx-json", "spdxVersion"), ("cyclonedx-json", "bomFormat")]
)
def test_sbom_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sbom_format: str, marker: str
) -> None:
    write_oci_layout(tmp_path / "layout", [python_layer(REQUESTS)], tag="v1")

    status = main(["sbom", f"oci:{tmp_path / 'layout'}:v1", "--format", sbom_format])
    document = json.loads(capsys.readouterr().out)

    assert status == 0
    assert marker in document
    assert "pkg:pypi/requests@2.19.0" in json.dumps(document)


@pytest.mark.registry
def test_sbom_registry_names_digest(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push_layers(registry.url, "team/sbom", "v1", [python_layer(REQUESTS)])

    status = main(["sbom", f"{registry.host}/team/sbom:v1", "--format", "cyclonedx-json"])
    document = json.loads(capsys.readouterr().out)

    assert status == 0
    assert document["metadata"]["component"]["name"] == f"{registry.host}/team/sbom@{digest}"


def test_feed_sync_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"

    synced = main(["feed", "sync", str(feed_dir()), "--store", str(store)])
    sync_out = capsys.readouterr().out
    status = main(["feed", "status", "--store", str(store), "--format", "json"])
    document = json.loads(capsys.readouterr().out)

    assert synced == 0
    assert "6 records" in sync_out
    assert status == 0
    assert document["records"] == 6
    assert document["counts"] == {"PyPI": 6}
    assert document["source"] == str(feed_dir())
    assert document["lastSync"] is not None
    assert document["revision"]


def test_feed_status_text_and_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = main(["feed", "status", "--store", str(tmp_path / "empty")])
    empty_err = capsys.readouterr().err
    main(["feed", "sync", str(feed_dir()), "--store", str(tmp_path / "store")])
    capsys.readouterr()
    filled = main(["feed", "status", "--store", str(tmp_path / "store")])
    text = capsys.readouterr().out

    assert empty == 0
    assert "no revision yet" in empty_err
    assert filled == 0
    assert "records:   6" in text
    assert "PyPI" in text


def test_scan_with_feed_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert main(["feed", "sync", str(feed_dir()), "--store", str(store)]) == 0
    write_oci_layout(tmp_path / "layout", [python_layer(SEARCHOR)], tag="v1")
    capsys.readouterr()

    status = main(["scan", f"oci:{tmp_path / 'layout'}", "--feed", str(store), "--format", "json"])
    document = json.loads(capsys.readouterr().out)

    assert status == 0
    assert finding_ids(document) == {"PYSEC-2023-262"}


def test_feed_sync_missing_source_keeps_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["feed", "sync", str(feed_dir()), "--store", str(store)]) == 0
    before = (store / "ACTIVE").read_text()

    status = main(["feed", "sync", str(tmp_path / "absent"), "--store", str(store)])

    assert status == 2
    assert "absent" in capsys.readouterr().err
    assert (store / "ACTIVE").read_text() == before
