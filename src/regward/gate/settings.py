"""Settings of `regward serve`, from the command line and an optional YAML config file.

Command-line options win over the config file; the config file wins over the defaults. The YAML keys
are the long option names in camelCase: `upstream`, `listen`, `policy`, `database`,
`upstreamInsecure`, `upstreamUsername`, `upstreamPasswordFile`, `decisionCacheSeconds`,
`manifestCacheBytes`, `logFormat`, `feed`, `feedStore`, `scanTimeoutSeconds`, `feedInterval`,
`fullInterval`, `rescanBudget` (durations such as `2s` or `15m`), plus the `auth` section read by
`regward.auth` and the `notifications` section read by `regward.notify`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from regward.errors import RegwardError

DEFAULT_DATABASE = "sqlite:///regward.db"
DEFAULT_LISTEN = "127.0.0.1:5050"
MAX_CONFIG_BYTES = 1024 * 1024


class SettingsError(RegwardError):
    """The gate's configuration is invalid."""


@dataclass(frozen=True)
class GateSettings:
    """Everything `regward serve` needs to start."""

    upstream: str
    """Base URL of the registry behind the gate, e.g. `http://127.0.0.1:5000`."""
    policy_path: Path
    """The policy file; its revision is part of every cached decision."""
    listen_host: str = "127.0.0.1"
    listen_port: int = 5050
    database: str = DEFAULT_DATABASE
    upstream_insecure: bool = False
    """Allow plain HTTP or unverified TLS to a non-loopback upstream."""
    upstream_username: str | None = None
    upstream_password: str | None = field(default=None, repr=False)
    decision_cache_seconds: float = 300.0
    """How long a cached decision is reused before signatures are fetched again."""
    manifest_cache_bytes: int = 256 * 1024 * 1024
    policy_reload_seconds: float = 5.0
    """How often the policy file is checked for changes; 0 turns reloading off."""
    """Upper bound on verified manifest bytes kept in memory for digest pulls."""
    log_format: str = "text"
    auth: Mapping[str, Any] | None = None
    """The raw `auth` section, validated by `regward.auth` when auth is enabled."""
    admission: Mapping[str, Any] | None = None
    """The raw `admission` section of the config file, if any."""
    config_dir: Path = Path(".")
    """Folder of the config file, the base for relative paths inside it."""
    feed: str | None = None
    """Vulnerability feed: a directory, zip or feed store path, or an http(s) URL; None for none."""
    feed_store: Path | None = None
    """Directory an http(s) `feed` is synced into; None for the default (see `regward.scanning`)."""
    scan_timeout_seconds: float = 120.0
    """How long a pull waits for an image scan before the decision reports the scan as unavailable."""
    feed_interval: float = 900.0
    """Seconds between two polls of `feed` by the re-evaluation scheduler; 0 turns it off."""
    full_interval: float = 86400.0
    """Seconds between two full re-evaluations of every stored scan; 0 turns them off."""
    rescan_budget: float = 2.0
    """Seconds a pull waits to match again a result older than the rule's `maxScanAge`."""
    notifications: Mapping[str, Any] | None = None
    """The raw `notifications` section, validated by `regward.notify`."""


def parse_listen(value: str) -> tuple[str, int]:
    """Split `HOST:PORT` (or `[IPv6]:PORT`) into its parts."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise SettingsError(f"invalid listen address {value!r}: expected HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536:
        raise SettingsError(f"invalid listen port {port} in {value!r}: expected 1-65535")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


def check_upstream(url: str) -> str:
    """Return the upstream URL without a trailing slash, after checking its form."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"invalid upstream URL {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"invalid upstream URL {url!r}: a registry base URL has no path")
    return f"{parts.scheme}://{parts.netloc}"


def load_config_file(path: Path) -> dict[str, Any]:
    """Read the YAML config file into a mapping, with errors that name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise SettingsError(
            f"config file {path} is {len(data)} bytes, more than {MAX_CONFIG_BYTES}"
        )
    try:
        loaded = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"config file {path}: expected a mapping at the top level")
    return loaded


_KNOWN_KEYS = {
    "upstream",
    "listen",
    "policy",
    "database",
    "upstreamInsecure",
    "upstreamUsername",
    "upstreamPasswordFile",
    "decisionCacheSeconds",
    "manifestCacheBytes",
    "policyReloadSeconds",
    "logFormat",
    "auth",
    "admission",
    "feed",
    "feedStore",
    "feedInterval",
    "fullInterval",
    "rescanBudget",
    "notifications",
    "scanTimeoutSeconds",
}


def build_settings(
    *,
    config_path: str | None,
    upstream: str | None,
    listen: str | None,
    policy: str | None,
    database: str | None,
    upstream_insecure: bool | None = None,
    feed: str | None = None,
    feed_store: str | None = None,
    feed_interval: str | None = None,
    rescan_budget: str | None = None,
) -> GateSettings:
    """Merge the config file (if any) with command-line values into `GateSettings`."""
    config: dict[str, Any] = {}
    config_dir = Path(".")
    if config_path:
        path = Path(config_path)
        config = load_config_file(path)
        config_dir = path.parent
        unknown = sorted(set(config) - _KNOWN_KEYS)
        if unknown:
            raise SettingsError(
                f"config file {path}: unknown keys {', '.join(unknown)}; "
                f"expected some of {', '.join(sorted(_KNOWN_KEYS))}"
            )

    def pick(cli_value: Any, key: str) -> Any:
        return cli_value if cli_value is not None else config.get(key)

    upstream_value = pick(upstream, "upstream")
    if not upstream_value:
        raise SettingsError("missing upstream: pass --upstream URL or set `upstream` in --config")
    policy_value = pick(policy, "policy")
    if not policy_value:
        raise SettingsError("missing policy: pass --policy FILE or set `policy` in --config")
    policy_path = Path(policy_value)
    if policy is None and not policy_path.is_absolute():
        policy_path = config_dir / policy_path

    settings = GateSettings(
        upstream=check_upstream(str(upstream_value)),
        policy_path=policy_path,
        config_dir=config_dir,
        auth=config.get("auth"),
        admission=config.get("admission"),
    )
    host, port = parse_listen(str(pick(listen, "listen") or DEFAULT_LISTEN))
    settings = replace(settings, listen_host=host, listen_port=port)
    settings = replace(settings, database=str(pick(database, "database") or DEFAULT_DATABASE))
    insecure = pick(upstream_insecure, "upstreamInsecure")
    if insecure is not None:
        settings = replace(settings, upstream_insecure=bool(insecure))
    if "upstreamUsername" in config:
        password_file = config.get("upstreamPasswordFile")
        password = os.environ.get("REGWARD_UPSTREAM_PASSWORD")
        if password is None and password_file:
            password = (config_dir / str(password_file)).read_text().strip()
        settings = replace(
            settings,
            upstream_username=str(config["upstreamUsername"]),
            upstream_password=password,
        )
    if "decisionCacheSeconds" in config:
        settings = replace(
            settings,
            decision_cache_seconds=_non_negative(config, "decisionCacheSeconds"),
        )
    if "policyReloadSeconds" in config:
        settings = replace(
            settings, policy_reload_seconds=_non_negative(config, "policyReloadSeconds")
        )
    if "manifestCacheBytes" in config:
        settings = replace(
            settings, manifest_cache_bytes=int(_non_negative(config, "manifestCacheBytes"))
        )
    settings = replace(
        settings,
        feed=_feed_source(feed, config.get("feed"), config_dir),
        feed_store=_config_path(feed_store, config.get("feedStore"), config_dir),
    )
    settings = replace(
        settings,
        feed_interval=_duration(feed_interval, config, "feedInterval", settings.feed_interval),
        full_interval=_duration(None, config, "fullInterval", settings.full_interval),
        rescan_budget=_duration(rescan_budget, config, "rescanBudget", settings.rescan_budget),
        notifications=config.get("notifications"),
    )
    if "scanTimeoutSeconds" in config:
        settings = replace(
            settings, scan_timeout_seconds=_non_negative(config, "scanTimeoutSeconds")
        )
    if "logFormat" in config:
        settings = replace(settings, log_format=str(config["logFormat"]))
    return settings


def _duration(cli_value: str | None, config: Mapping[str, Any], key: str, default: float) -> float:
    """Return a duration in seconds from the command line, else the config file, else `default`."""
    from regward.reeval.durations import DurationError, parse_duration

    value: Any = cli_value if cli_value is not None else config.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value, name=key, allow_zero=key != "rescanBudget")
    except DurationError as exc:
        raise SettingsError(str(exc)) from exc


def _non_negative(config: Mapping[str, Any], key: str) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SettingsError(f"config key {key}: expected a non-negative number, got {value!r}")
    return float(value)


def _feed_source(cli_value: str | None, config_value: Any, config_dir: Path) -> str | None:
    """Return the feed source; a relative path from the config file is relative to its folder."""
    if cli_value:
        return cli_value
    if config_value is None:
        return None
    if not isinstance(config_value, str) or not config_value:
        raise SettingsError(
            f"config key feed: expected a path or an http(s) URL, got {config_value!r}"
        )
    if config_value.startswith(("http://", "https://")) or Path(config_value).is_absolute():
        return config_value
    return str(config_dir / config_value)


def _config_path(cli_value: str | None, config_value: Any, config_dir: Path) -> Path | None:
    if cli_value:
        return Path(cli_value)
    if config_value is None:
        return None
    if not isinstance(config_value, str) or not config_value:
        raise SettingsError(f"config key feedStore: expected a directory, got {config_value!r}")
    path = Path(config_value)
    return path if path.is_absolute() else config_dir / path
