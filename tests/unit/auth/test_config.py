"""Loading the `auth` section: the documented shape, durations, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from regward.auth.config import AuthSettings, format_duration, load_auth_settings, parse_duration
from regward.auth.errors import AuthConfigError
from regward.auth.scope import Action

ISSUE_EXAMPLE = """\
auth:
  enabled: true
  tokenLifetime: 15m
  oidc:
    - name: ci
      issuer: https://ci.example.test
      audience: regward
      jwksFile: jwks.json                # or jwksUrl
      grants:
        - claims: {repository: "acme/app", ref: "refs/heads/main"}   # every listed claim must match
          repositories: ["test/app"]
          actions: [pull, push]
"""


def _policy(**extra: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "name": "ci",
        "issuer": "https://ci.example.test",
        "audience": "regward",
        "jwksUrl": "https://ci.example.test/jwks",
        "grants": [
            {"claims": {"repository": "acme/app"}, "repositories": ["a/b"], "actions": ["pull"]}
        ],
    }
    policy.update(extra)
    return policy


def test_issue_example_loads(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    document = yaml.safe_load(ISSUE_EXAMPLE)
    settings = load_auth_settings(document["auth"], tmp_path)
    assert settings.enabled is True
    assert settings.token_lifetime == 900
    assert settings.max_token_lifetime == 90 * 86400
    assert settings.push_requires_oidc is False
    assert settings.key_directory == tmp_path / "keys"
    policy = settings.oidc[0]
    assert policy.jwks_file == tmp_path / "jwks.json"
    assert policy.audience == ["regward"]
    assert policy.grants[0].claims == {"repository": "acme/app", "ref": "refs/heads/main"}
    assert policy.grants[0].actions == [Action.PULL, Action.PUSH]


def test_missing_section_is_disabled(tmp_path: Path) -> None:
    assert load_auth_settings(None, tmp_path) == AuthSettings()
    assert AuthSettings().enabled is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("30d", 2592000),
        ("2w", 1209600),
        ("1h30m", 5400),
        (600, 600),
        ("600", 600),
    ],
)
def test_parse_duration(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15 minutes", "-5", "m", "1.5h", "", True, -1, None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(900) == "15m"
    assert format_duration(86400 * 30) == "30d"
    assert format_duration(61) == "61s"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"tokenLifetime": "30s"},
            r"auth\.tokenLifetime: Input should be greater than or equal to 60",
        ),
        ({"tokenLifetime": "soon"}, r"auth\.tokenLifetime: invalid duration 'soon'"),
        ({"maxTokenLifetime": "10m"}, r"auth\.maxTokenLifetime"),
        ({"bogus": 1}, r"auth\.bogus: Extra inputs are not permitted"),
        (
            {
                "oidc": [
                    _policy(
                        grants=[{"claims": {"a": "b"}, "repositories": ["x"], "actions": ["pul"]}]
                    )
                ]
            },
            r"auth\.oidc\[0\]\.grants\[0\]\.actions\[0\]",
        ),
        (
            {
                "oidc": [
                    _policy(grants=[{"claims": {}, "repositories": ["x"], "actions": ["pull"]}])
                ]
            },
            r"auth\.oidc\[0\]\.grants\[0\]\.claims",
        ),
        (
            {"oidc": [_policy(jwksUrl="http://ci.example.test/jwks")]},
            r"auth\.oidc\[0\]\.jwksUrl: invalid JWKS URL",
        ),
        (
            {"oidc": [_policy(jwksFile="jwks.json")]},
            r"auth\.oidc\[0\]: .*exactly one of jwksFile or jwksUrl",
        ),
        ({"oidc": [_policy(jwksUrl=None)]}, r"exactly one of jwksFile or jwksUrl"),
        ({"oidc": [_policy(issuer="ci.example.test")]}, r"auth\.oidc\[0\]\.issuer: invalid issuer"),
        ({"oidc": [_policy(), _policy()]}, r"duplicate OIDC policy name 'ci'"),
        ({"oidc": [_policy(name="bad name")]}, r"auth\.oidc\[0\]\.name: invalid policy name"),
        ({"oidc": [_policy(grants=[])]}, r"auth\.oidc\[0\]\.grants"),
        ({"clockSkew": "10m"}, r"auth\.clockSkew"),
        (
            {
                "oidc": [
                    _policy(
                        grants=[
                            {
                                "claims": {"a": "b"},
                                "repositories": ["Test/**x"],
                                "actions": ["pull"],
                            }
                        ]
                    )
                ]
            },
            r"auth\.oidc\[0\]\.grants\[0\]\.repositories: invalid pattern 'Test/\*\*x'",
        ),
        ({"realm": "ftp://x/token"}, r"auth\.realm: invalid realm"),
    ],
)
def test_invalid_settings_name_the_key(
    tmp_path: Path, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(AuthConfigError, match=message):
        load_auth_settings(section, tmp_path)


def test_loopback_http_jwks_url_allowed(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"):
        settings = load_auth_settings({"oidc": [_policy(jwksUrl=url)]}, tmp_path)
        assert settings.oidc[0].jwks_url == url


def test_missing_jwks_file_named(tmp_path: Path) -> None:
    section = {"oidc": [_policy(jwksUrl=None, jwksFile="absent.json")]}
    with pytest.raises(
        AuthConfigError, match=r"auth\.oidc\[0\]\.jwksFile: file not found: .*absent"
    ):
        load_auth_settings(section, tmp_path)


def test_claim_scalars_become_text(tmp_path: Path) -> None:
    grant = {
        "claims": {"run_attempt": 1, "protected": True},
        "repositories": ["a/b"],
        "actions": ["pull"],
    }
    settings = load_auth_settings({"oidc": [_policy(grants=[grant])]}, tmp_path)
    assert settings.oidc[0].grants[0].claims == {"run_attempt": "1", "protected": "true"}


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="auth: expected a mapping"):
        load_auth_settings(["enabled"], tmp_path)  # type: ignore[arg-type]


def test_key_overlap_covers_longest_token() -> None:
    settings = AuthSettings(token_lifetime=900, refresh_token_lifetime=3600, clock_skew=60)
    assert settings.key_overlap() >= 3600 + 60
