"""The `auth` section of the gate's YAML config, validated with pydantic.

Keys are camelCase as in the config file. Durations are a number of seconds or a string such as
`90s`, `15m`, `12h`, `30d`, `2w` or `1h30m`, and are stored as whole seconds. Relative paths
(`keyDirectory`, `jwksFile`) are resolved against the folder of the config file.

```yaml
auth:
  enabled: true
  service: regward
  tokenLifetime: 15m
  oidc:
    - name: ci
      issuer: https://token.actions.githubusercontent.com
      audience: regward
      jwksUrl: https://token.actions.githubusercontent.com/.well-known/jwks
      grants:
        - claims: {repository: "acme/app", ref: "refs/heads/main"}
          repositories: ["acme/app"]
          actions: [pull, push]
```
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from regward.auth.errors import AuthConfigError
from regward.auth.scope import Action
from regward.policy.errors import PatternError
from regward.policy.match import check_repository_pattern

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR

MIN_TOKEN_LIFETIME = 60
"""Shortest registry token lifetime in seconds; the Docker token specification sets 60 s."""

_UNITS = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def parse_duration(value: object) -> int:
    """Parse a duration (`15m`, `30d`, `1h30m` or a number of seconds) into whole seconds.

    Raises:
        ValueError: the value is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 90s, 15m, 12h, 30d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: expected a non-negative number")
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if _DURATION.fullmatch(text):
            return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    raise ValueError(f"invalid duration {value!r}: expected e.g. 90s, 15m, 12h, 30d")


def format_duration(seconds: float) -> str:
    """Format seconds as the largest whole unit that fits, e.g. `900` → `15m`."""
    whole = int(seconds)
    for unit, size in (("w", 7 * DAY), ("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


Duration = Annotated[int, BeforeValidator(parse_duration)]
"""A duration in whole seconds, written in the config as `15m`, `30d` or a number."""


def is_loopback_host(host: str) -> bool:
    """Return whether `host` is `localhost` or a loopback IP address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_jwks_url(url: str) -> str:
    """Check that a JWKS URL is https, or http on a loopback host, and return it.

    Raises:
        ValueError: another scheme, no host, or plain http to a non-loopback host.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"invalid JWKS URL {url!r}: expected https://HOST/PATH")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ValueError(
        f"invalid JWKS URL {url!r}: expected https, or http only on localhost or a loopback address"
    )


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class OidcGrant(_Model):
    """A grant: when every listed claim matches, allow `actions` on `repositories`."""

    claims: dict[str, str] = Field(min_length=1)
    """Claim name to glob pattern; every listed claim must be present and match."""
    repositories: list[str] = Field(min_length=1)
    """Repository globs in the policy file's syntax: `*` within a segment, `**` for any segments."""
    actions: list[Action] = Field(min_length=1)
    """Actions allowed on matching repositories."""

    @field_validator("claims", mode="before")
    @classmethod
    def _claims_as_text(cls, value: object) -> object:
        # YAML turns `run_attempt: 1` or `environment_protected: true` into int or bool; the claim
        # comparison is on text, so convert scalars the way JSON writes them.
        if isinstance(value, Mapping):
            return {str(key): _claim_text(item) for key, item in value.items()}
        return value

    @field_validator("repositories")
    @classmethod
    def _repository_globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                check_repository_pattern(pattern)
            except PatternError as exc:
                raise ValueError(str(exc)) from exc
        return value


def _claim_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class OidcTrustPolicy(_Model):
    """A trusted OIDC issuer (a CI system) and the grants its ID tokens can earn."""

    name: str
    """Policy name; identities are logged as `<name>:<sub>`."""
    issuer: str
    """Exact `iss` value, e.g. `https://token.actions.githubusercontent.com`."""
    audience: list[str] = Field(min_length=1)
    """Accepted `aud` values; the token must name at least one of them."""
    jwks_file: Path | None = None
    """Local JWKS file, for sites without access to the issuer."""
    jwks_url: str | None = None
    """JWKS URL of the issuer, fetched with a timeout and cached for `jwksCacheLifetime`."""
    jwks_cache_lifetime: Duration = Field(default=10 * MINUTE, ge=MINUTE, le=DAY)
    """How long fetched issuer keys are used before they are fetched again."""
    grants: list[OidcGrant] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _POLICY_NAME.fullmatch(value):
            raise ValueError(
                f"invalid policy name {value!r}: expected letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_form(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback_http = parts.scheme == "http" and is_loopback_host(parts.hostname or "")
        if not parts.hostname or (parts.scheme != "https" and not loopback_http):
            raise ValueError(f"invalid issuer {value!r}: expected an https URL")
        return value

    @field_validator("audience", mode="before")
    @classmethod
    def _audience_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url_form(cls, value: str | None) -> str | None:
        return None if value is None else check_jwks_url(value)

    @model_validator(mode="after")
    def _one_jwks_source(self) -> OidcTrustPolicy:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("expected exactly one of jwksFile or jwksUrl")
        return self


class LoginRateLimit(_Model):
    """Token bucket for failed logins, per client address."""

    burst: int = Field(default=10, ge=1, le=10_000)
    """Failed logins allowed in a row before the address is throttled."""
    per_minute: float = Field(default=10.0, gt=0, le=100_000)
    """Failed logins per minute the bucket refills."""


class AuthSettings(_Model):
    """The validated `auth` section. Durations are whole seconds."""

    enabled: bool = False
    """Authenticate every request; when false the gate admits anonymous clients."""
    service: str = Field(default="regward", min_length=1)
    """Service name: the `service` of the challenge and the `aud` of issued tokens."""
    issuer: str = Field(default="regward", min_length=1)
    """The `iss` of tokens the gate issues."""
    realm: str | None = None
    """URL of the token endpoint as clients reach it, e.g. `https://registry.example/token`; the
    gate derives one from its listen address when unset."""
    key_directory: Path = Path("keys")
    """Folder of the ES256 signing keys, created with mode 0700 when missing."""
    key_rotation: Duration = Field(default=30 * DAY, ge=HOUR, le=365 * DAY)
    """Age at which a new signing key replaces the current one."""
    token_lifetime: Duration = Field(default=15 * MINUTE, ge=MIN_TOKEN_LIFETIME, le=DAY)
    """Lifetime of issued registry tokens."""
    refresh_token_lifetime: Duration = Field(default=DAY, ge=MIN_TOKEN_LIFETIME, le=90 * DAY)
    """Maximum refresh token lifetime (OAuth2 `access_type=offline`); the credential caps it too."""
    max_token_lifetime: Duration = Field(default=90 * DAY, ge=HOUR, le=3650 * DAY)
    """Maximum expiry a static token may be created or rotated with."""
    rotation_overlap: Duration = Field(default=HOUR, ge=0, le=7 * DAY)
    """How long the old secret of a rotated static token stays valid."""
    push_requires_oidc: bool = False
    """Drop push grants of static tokens on repositories that policy rules protect."""
    clock_skew: Duration = Field(default=60, ge=0, le=5 * MINUTE)
    """Tolerance on `exp`, `nbf` and `iat` of presented tokens."""
    login_rate_limit: LoginRateLimit = LoginRateLimit()
    oidc: list[OidcTrustPolicy] = Field(default_factory=list)

    @field_validator("realm")
    @classmethod
    def _realm_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"invalid realm {value!r}: expected e.g. https://registry.example/token"
            )
        return value

    @model_validator(mode="after")
    def _unique_policy_names(self) -> AuthSettings:
        seen: set[str] = set()
        for policy in self.oidc:
            if policy.name in seen:
                raise ValueError(f"duplicate OIDC policy name {policy.name!r}")
            seen.add(policy.name)
        return self

    def key_overlap(self) -> int:
        """Return how long (seconds) a replaced signing key still verifies tokens it signed.

        It covers the longest token the key can have signed, plus the clock skew and a minute.
        """
        return max(self.token_lifetime, self.refresh_token_lifetime) + self.clock_skew + MINUTE


def _format_location(root: str, location: Sequence[int | str]) -> str:
    text = root
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def load_auth_settings(mapping: Mapping[str, Any] | None, base_dir: Path) -> AuthSettings:
    """Validate the value of the `auth` key of the config file.

    Args:
        mapping: the `auth` section as loaded from YAML, or None when the section is absent.
        base_dir: folder of the config file; relative `keyDirectory` and `jwksFile` resolve here.

    Raises:
        AuthConfigError: the section is invalid, or a `jwksFile` does not exist. The message names
            the key path, e.g. `auth.oidc[0].grants[1].actions[0]`.

    Returns:
        The validated settings with absolute paths.
    """
    if mapping is None:
        return AuthSettings()
    if not isinstance(mapping, Mapping):
        raise AuthConfigError(f"auth: expected a mapping, got {type(mapping).__name__}")
    try:
        settings = AuthSettings.model_validate(dict(mapping))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = _format_location("auth", [p for p in error["loc"] if p != "__root__"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {message}")
        raise AuthConfigError("invalid auth settings: " + "; ".join(problems)) from exc

    key_directory = settings.key_directory
    if not key_directory.is_absolute():
        key_directory = base_dir / key_directory
    policies = []
    for index, policy in enumerate(settings.oidc):
        if policy.jwks_file is not None:
            jwks_file = policy.jwks_file
            if not jwks_file.is_absolute():
                jwks_file = base_dir / jwks_file
            if not jwks_file.is_file():
                raise AuthConfigError(f"auth.oidc[{index}].jwksFile: file not found: {jwks_file}")
            policy = policy.model_copy(update={"jwks_file": jwks_file})
        policies.append(policy)
    return settings.model_copy(update={"key_directory": key_directory, "oidc": policies})
