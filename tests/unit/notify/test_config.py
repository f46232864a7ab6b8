"""The `notifications` section: validation, secrets and backoff."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from regward.notify import (
    EventType,
    NotifyError,
    default_webhook_name,
    encode_body,
    load_notification_settings,
    sign_body,
    verify_signature,
)


def test_secret_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("s3cret\n")

    settings = load_notification_settings(
        {
            "webhooks": [{"url": "https://hooks.example/x?token=abc", "secretFile": "hook.secret"}],
            "maxAttempts": 4,
            "backoff": "500ms",
            "maxBackoff": "2s",
        },
        tmp_path,
    )

    (hook,) = settings.webhooks
    assert hook.secret == b"s3cret"
    assert hook.name == default_webhook_name("https://hooks.example/x?token=abc")
    assert hook.name.startswith("hooks.example#")
    assert "token" not in repr(hook)
    assert hook.events == frozenset(EventType)
    assert settings.max_attempts == 4
    assert [settings.retry_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]


def test_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")

    settings = load_notification_settings(
        {
            "webhooks": [
                {
                    "url": "http://127.0.0.1:9/x",
                    "name": "local",
                    "secretEnv": "HOOK_SECRET",
                    "events": ["vulnerability.denied"],
                }
            ]
        }
    )

    (hook,) = settings.webhooks
    assert hook.name == "local"
    assert hook.secret == b"from-env"
    assert hook.events == {EventType.VULNERABILITY_DENIED}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"webhooks": [{"url": "ftp://x/y", "secretEnv": "X"}]}, "expected an http"),
        ({"webhooks": [{"url": "http://x/y"}]}, "set exactly one of secretFile and secretEnv"),
        ({"webhooks": [{"url": "http://x/y", "secretEnv": "UNSET_REGWARD_VAR"}]}, "is not set"),
        ({"webhooks": [], "maxAttempts": 0}, "maxAttempts"),
        ({"webhooks": [], "backoff": "soon"}, "invalid notifications.backoff"),
        ({"webhook": []}, "webhook"),
        (
            {"webhooks": [{"url": "http://x/y", "secretEnv": "X", "events": ["image.pushed"]}]},
            "events",
        ),
    ],
)
def test_invalid_sections(
    section: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X", "value")
    monkeypatch.delenv("UNSET_REGWARD_VAR", raising=False)

    with pytest.raises(NotifyError, match=message):
        load_notification_settings(section)


def test_empty_secret_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")

    with pytest.raises(NotifyError, match="is empty"):
        load_notification_settings(
            {"webhooks": [{"url": "http://x/y", "secretFile": "empty"}]}, tmp_path
        )


def test_duplicate_names_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X", "value")
    hook = {"url": "http://x/y", "secretEnv": "X", "name": "same"}

    with pytest.raises(NotifyError, match="same more than once"):
        load_notification_settings({"webhooks": [hook, hook]})


def test_signature_is_hmac_sha256_hex() -> None:
    body = encode_body({"b": 1, "a": "x"})

    assert body == b'{"a":"x","b":1}'
    assert sign_body(b"key", body) == ("sha256=" + hmac.new(b"key", body, "sha256").hexdigest())
    assert verify_signature(b"key", body, sign_body(b"key", body))
    assert not verify_signature(b"key", body + b" ", sign_body(b"key", body))
    assert not verify_signature(b"key", body, None)
