"""`regward check`, `regward verify` and `regward sign` against a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regward.cli.main import main
from tests.integration.gate.conftest import Keys, Signer, write_policy
from tests.support.images import push_image
from tests.support.registry import RunningRegistry, free_port

pytestmark = pytest.mark.registry


def test_check_allowed_and_denied(
    tmp_path: Path,
    registry: RunningRegistry,
    keys: Keys,
    sign: Signer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(tmp_path, keys)
    signed = push_image(registry.url, "test/checked", "v1")
    sign("test/checked", signed.digest)
    push_image(registry.url, "test/checked", "v2", {"b": b"2"})

    allowed = main(["check", f"{registry.host}/test/checked:v1", "--policy", str(policy)])
    allowed_out = capsys.readouterr().out
    denied = main(
        ["check", f"{registry.host}/test/checked:v2", "--policy", str(policy), "--output", "json"]
    )
    denied_doc = json.loads(capsys.readouterr().out)

    assert allowed == 0
    assert signed.digest in allowed_out
    assert denied == 1
    assert denied_doc["allowed"] is False
    assert denied_doc["rule"] == "ci-signed"
    assert denied_doc["reasons"][0]["code"] == "signature-missing"


def test_check_unreachable_registry_is_error(
    tmp_path: Path,
    keys: Keys,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(tmp_path, keys)

    status = main(["check", f"127.0.0.1:{free_port()}/test/app:v1", "--policy", str(policy)])

    assert status == 2
    assert "could not fetch" in capsys.readouterr().err


def test_sign_then_verify(
    tmp_path: Path,
    registry: RunningRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    image = push_image(registry.url, "test/signed-cli", "v1")
    assert main(["keygen", "--prefix", "ci"]) == 0
    assert main(["keygen", "--prefix", "other"]) == 0
    assert main(["sign", f"{registry.host}/test/signed-cli:v1", "--key", "ci.key"]) == 0
    capsys.readouterr()

    verified = main(["verify", f"{registry.host}/test/signed-cli:v1", "--key", "ci.pub"])
    payload = json.loads(capsys.readouterr().out.splitlines()[0])
    wrong = main(["verify", f"{registry.host}/test/signed-cli:v1", "--key", "other.pub"])

    assert verified == 0
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
    assert wrong == 1
    assert (tmp_path / "ci.key").stat().st_mode & 0o077 == 0
