"""The `notifications` section of the gate's config file, validated into `NotificationSettings`.

Example:

    notifications:
      webhooks:
        - url: https://hooks.example.com/regward
          secretFile: webhook.secret      # or secretEnv: REGWARD_WEBHOOK_SECRET
          events: [vulnerability.denied]  # default: every event type
      maxAttempts: 8
      backoff: 2s
      maxBackoff: 10m
      timeout: 10s

Secrets are read once, when the settings are loaded. A relative `secretFile` is relative to the
config file's folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from regward.notify.interface import EventType, NotifyError
from regward.reeval.durations import DurationError, parse_duration

MAX_SECRET_BYTES = 4096
"""Largest webhook secret read from a file or the environment."""


@dataclass(frozen=True)
class WebhookTarget:
    """One webhook receiver."""

    name: str
    """Stable name stored with each delivery and used in logs: the configured `name`, else the
    URL's host and a hash of the whole URL, so URLs that carry tokens never reach logs."""
    url: str = field(repr=False)
    secret: bytes = field(repr=False)
    """Key of the HMAC-SHA256 signature in `X-Regward-Signature`."""
    events: frozenset[EventType] = frozenset(EventType)
    """Event types sent to this receiver."""


@dataclass(frozen=True)
class NotificationSettings:
    """Webhook receivers and the delivery schedule."""

    webhooks: tuple[WebhookTarget, ...] = ()
    max_attempts: int = 8
    """Attempts per delivery, the first one included; after the last a dead letter is kept."""
    backoff: float = 2.0
    """Seconds before the first retry; each later retry waits twice as long as the one before."""
    max_backoff: float = 600.0
    """Upper bound on the wait between two attempts, in seconds."""
    timeout: float = 10.0
    """Seconds one POST may take, connection included."""
    poll_interval: float = 1.0
    """Seconds between two looks for due deliveries when nothing woke the dispatcher."""
    concurrency: int = 4
    """POSTs in flight at once."""

    @property
    def enabled(self) -> bool:
        """Whether any receiver is configured."""
        return bool(self.webhooks)

    def retry_delay(self, attempts: int) -> float:
        """Return the seconds to wait after `attempts` failed attempts."""
        return float(min(self.max_backoff, self.backoff * 2 ** max(0, attempts - 1)))

    def target(self, name: str) -> WebhookTarget | None:
        """Return the receiver named `name`, or None when the config no longer has it."""
        return next((hook for hook in self.webhooks if hook.name == name), None)


class _WebhookWire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    name: str | None = Field(default=None, min_length=1, max_length=128)
    secret_file: str | None = Field(default=None, alias="secretFile")
    secret_env: str | None = Field(default=None, alias="secretEnv")
    events: list[EventType] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return value


class _NotificationsWire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: list[_WebhookWire] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100, alias="maxAttempts")
    backoff: float | str = 2.0
    max_backoff: float | str = Field(default=600.0, alias="maxBackoff")
    timeout: float | str = 10.0
    poll_interval: float | str = Field(default=1.0, alias="pollInterval")
    concurrency: int = Field(default=4, ge=1, le=64)


def load_notification_settings(
    section: Mapping[str, Any] | None, config_dir: Path = Path(".")
) -> NotificationSettings:
    """Validate the `notifications` section and read the webhook secrets.

    Args:
        section: the section as parsed from YAML; None means no notifications.
        config_dir: the folder relative `secretFile` paths start from.

    Raises:
        NotifyError: a key is unknown or invalid, or a secret is missing, unreadable or empty.
    """
    if section is None:
        return NotificationSettings()
    if not isinstance(section, Mapping):
        raise NotifyError("config key notifications: expected a mapping")
    try:
        wire = _NotificationsWire.model_validate(dict(section))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise NotifyError(f"invalid notifications section: {problems}") from exc
    try:
        backoff = parse_duration(wire.backoff, name="notifications.backoff")
        max_backoff = parse_duration(wire.max_backoff, name="notifications.maxBackoff")
        timeout = parse_duration(wire.timeout, name="notifications.timeout")
        poll_interval = parse_duration(wire.poll_interval, name="notifications.pollInterval")
    except DurationError as exc:
        raise NotifyError(str(exc)) from exc

    webhooks = tuple(
        _target(hook, position, config_dir) for position, hook in enumerate(wire.webhooks)
    )
    names = [hook.name for hook in webhooks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise NotifyError(
            f"invalid notifications section: webhook names must be unique, got "
            f"{', '.join(duplicates)} more than once"
        )
    return NotificationSettings(
        webhooks=webhooks,
        max_attempts=wire.max_attempts,
        backoff=backoff,
        max_backoff=max(max_backoff, backoff),
        timeout=timeout,
        poll_interval=poll_interval,
        concurrency=wire.concurrency,
    )


def default_webhook_name(url: str) -> str:
    """Return `<host>#<12 hex digits of SHA-256(url)>`, a name that reveals no path or query."""
    host = urlsplit(url).hostname or "webhook"
    return f"{host}#{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _target(hook: _WebhookWire, position: int, config_dir: Path) -> WebhookTarget:
    where = f"notifications.webhooks[{position}]"
    if (hook.secret_file is None) == (hook.secret_env is None):
        raise NotifyError(f"invalid {where}: set exactly one of secretFile and secretEnv")
    if hook.secret_file is not None:
        path = Path(hook.secret_file)
        if not path.is_absolute():
            path = config_dir / path
        try:
            with path.open("rb") as handle:
                secret = handle.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise NotifyError(
                f"invalid {where}: cannot read secretFile {path}: {exc.strerror}"
            ) from exc
        source = f"secretFile {path}"
    else:
        assert hook.secret_env is not None
        value = os.environ.get(hook.secret_env)
        if value is None:
            raise NotifyError(
                f"invalid {where}: environment variable {hook.secret_env} (secretEnv) is not set"
            )
        secret = value.encode()
        source = f"environment variable {hook.secret_env}"
    secret = secret.strip()
    if not secret:
        raise NotifyError(f"invalid {where}: {source} is empty")
    if len(secret) > MAX_SECRET_BYTES:
        raise NotifyError(f"invalid {where}: {source} is longer than {MAX_SECRET_BYTES} bytes")
    events = frozenset(hook.events) if hook.events is not None else frozenset(EventType)
    return WebhookTarget(
        name=hook.name or default_webhook_name(hook.url),
        url=hook.url,
        secret=secret,
        events=events,
    )
