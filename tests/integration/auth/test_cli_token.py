"""`regward token` driven through `main()`: create, list, revoke, rotate, and the expiry cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from regward.cli.main import main


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGWARD_DATABASE_URL", raising=False)


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tokens.db'}"


def _create(database: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(
        [
            "token",
            "create",
            "--repository",
            "test/app",
            "--expires",
            "30d",
            "--description",
            "prod pull",
            "--database",
            database,
            *extra,
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert "shown only now" in err
    return out.strip()


def test_create_prints_token_once(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = _create(database, capsys)
    assert re.fullmatch(r"rgw_[0-9a-f]{12}_[0-9a-f]{64}", secret)

    assert main(["token", "list", "--database", database]) == 0
    listing, _ = capsys.readouterr()
    token_id = secret.split("_")[1]
    assert token_id in listing
    assert "active" in listing
    assert "never" in listing
    assert "prod pull" in listing
    assert secret.split("_")[2] not in listing


def test_list_json(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = _create(database, capsys, "--repository", "test/other", "--actions", "pull,push")
    assert main(["token", "list", "--format", "json", "--database", database]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["id"] == secret.split("_")[1]
    assert rows[0]["repositories"] == ["test/app", "test/other"]
    assert rows[0]["actions"] == ["pull", "push"]
    assert rows[0]["last_used"] is None


def test_revoke_and_rotate(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = _create(database, capsys)
    token_id = secret.split("_")[1]

    assert main(["token", "rotate", token_id, "--database", database]) == 0
    out, err = capsys.readouterr()
    rotated = out.strip()
    assert rotated.startswith(f"rgw_{token_id}_")
    assert rotated != secret
    assert "previous secret works until" in err

    assert main(["token", "revoke", token_id, "--database", database]) == 0
    assert f"revoked token {token_id}" in capsys.readouterr().err
    assert main(["token", "revoke", token_id, "--database", database]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert main(["token", "rotate", token_id, "--database", database]) == 2
    assert main(["token", "list", "--format", "json", "--database", database]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "revoked"


def test_expiry_mandatory_and_capped(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as missing:
        main(
            ["token", "create", "--repository", "a/b", "--description", "x", "--database", database]
        )
    assert missing.value.code == 2
    capsys.readouterr()

    too_long = [
        "token",
        "create",
        "--repository",
        "a/b",
        "--description",
        "x",
        "--database",
        database,
    ]
    assert main([*too_long, "--expires", "91d"]) == 2
    assert "longer than the maximum of 90 days" in capsys.readouterr().err

    config = tmp_path / "gate.yaml"
    config.write_text("auth:\n  maxTokenLifetime: 7d\n")
    assert main([*too_long, "--expires", "8d", "--config", str(config)]) == 2
    assert "maximum of 7 days" in capsys.readouterr().err
    assert main([*too_long, "--expires", "7d", "--config", str(config)]) == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--actions", "pull,admin", "invalid action 'admin'"),
        ("--repository", "Test/App", "invalid pattern 'Test/App'"),
        ("--expires", "forever", "invalid duration 'forever'"),
    ],
)
def test_invalid_arguments(
    database: str, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    arguments = {"--repository": "a/b", "--expires": "1d", "--actions": "pull"}
    arguments[option] = value
    argv = ["token", "create", "--description", "x", "--database", database]
    for key, item in arguments.items():
        argv += [key, item]
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_database_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'from-config.db'}\n")
    argv = ["token", "create", "--repository", "a/b", "--expires", "1d", "--description", "x"]
    assert main([*argv, "--config", str(config)]) == 0
    capsys.readouterr()
    assert (tmp_path / "from-config.db").exists()
