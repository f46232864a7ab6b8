"""The gate's feed settings: `--feed`, `--feed-store` and their config file keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from regward.gate.settings import GateSettings, SettingsError, build_settings


def settings_from(tmp_path: Path, config: str, **cli: str | None) -> GateSettings:
    path = tmp_path / "conf" / "gate.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("upstream: http://127.0.0.1:5000\npolicy: policy.yaml\n" + config)
    return build_settings(
        config_path=str(path), upstream=None, listen=None, policy=None, database=None, **cli
    )


def test_no_feed_by_default(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "")

    assert settings.feed is None
    assert settings.feed_store is None
    assert settings.scan_timeout_seconds == 120.0


def test_relative_config_paths_follow_config_file(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "feed: osv\nfeedStore: store\nscanTimeoutSeconds: 30\n")

    assert settings.feed == str(tmp_path / "conf" / "osv")
    assert settings.feed_store == tmp_path / "conf" / "store"
    assert settings.scan_timeout_seconds == 30.0


def test_url_feed_kept_as_is(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "feed: https://osv.example/bucket/\n")

    assert settings.feed == "https://osv.example/bucket/"


def test_command_line_feed_wins(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "feed: osv\n", feed="/srv/feed", feed_store="/srv/store")

    assert settings.feed == "/srv/feed"
    assert settings.feed_store == Path("/srv/store")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("feed: 5\n", "config key feed: expected a path or an http"),
        ("feedStore: [a]\n", "config key feedStore: expected a directory"),
        ("scanTimeoutSeconds: -1\n", "scanTimeoutSeconds: expected a non-negative number"),
    ],
)
def test_invalid_feed_settings(tmp_path: Path, config: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(tmp_path, config)
