"""`regward promote` end to end: exit codes, output and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regward.cli.main import main
from regward.signatures.cosign import signature_tag
from regward.store.db import Store
from tests.integration.gate.conftest import Keys
from tests.integration.promotion.conftest import sign_on
from tests.integration.promotion.test_promote import fetch_manifest
from tests.integration.scan.conftest import SEARCHOR, feed_dir, python_layer
from tests.support.images import push_image
from tests.support.layers import push_layers
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def test_promote_signed_image(
    registry: RunningRegistry,
    policy_file: Path,
    keys: Keys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = push_image(registry.url, "dev/app", "v1", {"app.txt": b"clean"})
    signature = sign_on(registry, "dev/app", image.digest, keys.private_pem)
    database = f"sqlite:///{tmp_path / 'audit.db'}"

    code = main(
        [
            "promote",
            f"{registry.host}/dev/app:v1",
            f"{registry.host}/prod/app:v1",
            "--policy",
            str(policy_file),
            "--database",
            database,
            "--output",
            "json",
        ]
    )

    output = json.loads(capsys.readouterr().out)
    assert code == 0
    assert output["promoted"] is True
    assert output["digest"] == image.digest
    assert output["rule"] == "production"
    assert {"kind": "signature", "digest": signature} in [
        {"kind": item["kind"], "digest": item["digest"]} for item in output["copied"]["accessories"]
    ]
    assert fetch_manifest(registry.url, "prod/app", "v1") == (image.digest, image.manifest)
    copied = fetch_manifest(registry.url, "prod/app", signature_tag(image.digest))
    assert copied is not None
    assert copied[0] == signature
    with Store(database) as store:
        records = store.list_audit(repository="prod/app")
    assert [(r.action, r.decision, r.digest) for r in records] == [("push", "allow", image.digest)]


def test_promote_unsigned_image_refused(
    registry: RunningRegistry,
    policy_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = push_image(registry.url, "dev/app", "v1", {"app.txt": b"unsigned"})
    database = f"sqlite:///{tmp_path / 'audit.db'}"

    code = main(
        [
            "promote",
            f"{registry.host}/dev/app:v1",
            f"{registry.host}/prod/app:v1",
            "--policy",
            str(policy_file),
            "--database",
            database,
        ]
    )

    errors = capsys.readouterr().err
    assert code == 1
    assert "refused" in errors
    assert "no signature verified by authority 'ci'" in errors
    assert fetch_manifest(registry.url, "prod/app", "v1") is None
    with Store(database) as store:
        records = store.list_audit(repository="prod/app")
    assert [(r.decision, r.digest, r.rule) for r in records] == [
        ("deny", image.digest, "production")
    ]


def test_promote_without_policy_is_an_error(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGWARD_POLICY", raising=False)

    code = main(["promote", f"{registry.host}/dev/app:v1", f"{registry.host}/prod/app"])

    assert code == 2
    assert "missing policy" in capsys.readouterr().err


def test_promote_missing_source_is_an_error(
    registry: RunningRegistry,
    policy_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "promote",
            f"{registry.host}/dev/absent:v1",
            f"{registry.host}/prod/absent:v1",
            "--policy",
            str(policy_file),
            "--database",
            f"sqlite:///{tmp_path / 'audit.db'}",
        ]
    )

    assert code == 2
    assert "not found" in capsys.readouterr().err


VULNERABILITY_POLICY = """\
defaultAction: deny
rules:
  - name: development
    repositories: ["dev/**"]
  - name: production
    repositories: ["prod/**"]
    signatures:
      authorities:
        - name: ci
          key: {path: cosign.pub}
    vulnerabilities:
      denyAtOrAbove: high
      maxScanAge: 24h
"""


def promote_with_feed(registry: RunningRegistry, tmp_path: Path, name: str) -> int:
    policy = tmp_path / "vulnerability-policy.yaml"
    policy.write_text(VULNERABILITY_POLICY)
    return main(
        [
            "promote",
            f"{registry.host}/dev/{name}:v1",
            f"{registry.host}/prod/{name}:v1",
            "--policy",
            str(policy),
            "--feed",
            str(feed_dir()),
            "--database",
            f"sqlite:///{tmp_path / 'audit.db'}",
        ]
    )


def test_promote_clean_signed_image_with_feed(
    registry: RunningRegistry,
    policy_file: Path,
    keys: Keys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = push_layers(registry.url, "dev/clean", "v1", [python_layer(("six", "1.16.0"))])
    signature = sign_on(registry, "dev/clean", digest, keys.private_pem)

    code = promote_with_feed(registry, tmp_path, "clean")

    output = capsys.readouterr().out
    assert code == 0
    assert f"promoted {registry.host}/dev/clean@{digest}" in output
    assert fetch_manifest(registry.url, "prod/clean", "v1") is not None
    copied = fetch_manifest(registry.url, "prod/clean", signature_tag(digest))
    assert copied is not None
    assert copied[0] == signature


def test_promote_vulnerable_image_refused(
    registry: RunningRegistry,
    policy_file: Path,
    keys: Keys,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = push_layers(registry.url, "dev/search", "v1", [python_layer(SEARCHOR)])
    sign_on(registry, "dev/search", digest, keys.private_pem)

    code = promote_with_feed(registry, tmp_path, "search")

    errors = capsys.readouterr().err
    assert code == 1
    assert "refused" in errors
    assert "PYSEC-2023-262" in errors
    assert fetch_manifest(registry.url, "prod/search", "v1") is None
