"""`regward enroll` against a real docker-registry, with the portfolio in SQLite or PostgreSQL."""

from __future__ import annotations

import json

import pytest

from regward.cli.main import main
from regward.reeval import MembershipStore
from regward.signatures.cosign import signature_tag
from regward.store import Store
from regward.store.scans import ScanStore
from tests.integration.scan.conftest import SEARCHOR, feed_dir, python_layer
from tests.support.images import push_image
from tests.support.layers import push_layers
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def test_enroll_registry_walks_catalog(
    registry: RunningRegistry,
    store: Store,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vulnerable = push_layers(registry.url, "team/app", "v1", [python_layer(SEARCHOR)])
    clean = push_image(registry.url, "other/tool", "latest", {"readme.txt": b"clean"})
    # A cosign signature tag is an accessory, not an image to enroll.
    push_image(registry.url, "team/app", signature_tag(vulnerable), {"sig": b"not an image"})

    code = main(
        [
            "enroll",
            registry.host,
            "--feed",
            str(feed_dir()),
            "--database",
            database_url,
            "--output",
            "json",
        ]
    )

    output = json.loads(capsys.readouterr().out)
    assert code == 0
    assert output["repositories"] == ["other/tool", "team/app"]
    images = {(image["repository"], image["tag"]): image for image in output["images"]}
    assert set(images) == {("other/tool", "latest"), ("team/app", "v1")}
    assert images[("team/app", "v1")]["digest"] == vulnerable
    assert images[("team/app", "v1")]["findings"] == 1
    assert images[("other/tool", "latest")]["status"] == "scanned"
    placements = MembershipStore(store.engine).placements([vulnerable, clean.digest])
    assert [(p.repository, p.tags) for p in placements[vulnerable]] == [("team/app", ("v1",))]
    scan = ScanStore(store.engine).load(vulnerable)
    assert scan is not None
    assert [finding.id for finding in scan.findings] == ["PYSEC-2023-262"]


def test_enroll_repository_only(
    registry: RunningRegistry,
    store: Store,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = push_layers(registry.url, "team/app", "v1", [python_layer(SEARCHOR)])
    push_image(registry.url, "other/tool", "latest")

    code = main(
        [
            "enroll",
            f"{registry.host}/team/app",
            "--feed",
            str(feed_dir()),
            "--database",
            database_url,
        ]
    )

    captured = capsys.readouterr()
    assert code == 0
    assert f"team/app:v1 {first} (1 findings)" in captured.out
    assert "enrolled 1 of 1 tags in 1 repositories" in captured.err
    assert MembershipStore(store.engine).digests() == [first]


def test_enroll_target_with_tag_is_an_error(
    registry: RunningRegistry, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "enroll",
            f"{registry.host}/team/app:v1",
            "--feed",
            str(feed_dir()),
            "--database",
            database_url,
        ]
    )

    assert code == 2
    assert "without a tag or digest" in capsys.readouterr().err
