"""Fixtures for auth tests: a pinned clock, a local OIDC issuer, a migrated SQLite store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regward.auth.config import AuthSettings, load_auth_settings
from regward.auth.service import AuthService
from regward.store.db import Store
from tests.unit.auth.issuer import AUDIENCE, LocalIssuer


class Clock:
    """A clock the test moves by hand; starts at the real time so PyJWT-made tokens fit."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer(tmp_path_factory.mktemp("issuer"))


def auth_section(issuer: LocalIssuer, **extra: Any) -> dict[str, Any]:
    """Return an `auth` section trusting the local issuer: acme/app on main may push test/app."""
    section: dict[str, Any] = {
        "enabled": True,
        "service": "regward-test",
        "tokenLifetime": "15m",
        "keyDirectory": "keys",
        "oidc": [
            {
                "name": "ci",
                "issuer": issuer.issuer,
                "audience": AUDIENCE,
                "jwksFile": str(issuer.jwks_path),
                "grants": [
                    {
                        "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
                        "repositories": ["test/app"],
                        "actions": ["pull", "push"],
                    },
                    {
                        "claims": {"repository": "acme/*"},
                        "repositories": ["test/shared"],
                        "actions": ["pull"],
                    },
                ],
            }
        ],
    }
    section.update(extra)
    return section


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'regward.db'}") as opened:
        opened.migrate()
        yield opened


@pytest.fixture
def make_service(
    tmp_path: Path, store: Store, clock: Clock, oidc_issuer: LocalIssuer
) -> Callable[..., AuthService]:
    """Build an AuthService on the shared store and key folder, with `auth` overrides."""

    def build(*, protected: Callable[[str], bool] | None = None, **overrides: Any) -> AuthService:
        settings: AuthSettings = load_auth_settings(
            auth_section(oidc_issuer, **overrides), tmp_path
        )
        return AuthService(
            settings,
            store,
            realm="http://127.0.0.1:5050/token",
            protected=protected or (lambda repository: False),
            clock=clock,
        )

    return build
