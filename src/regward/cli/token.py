"""`regward token`: create, list, revoke and rotate static scoped registry tokens.

Static tokens are for pipelines that cannot present a CI OIDC token. Each covers named repositories
with named actions and always expires. The secret is printed once, on stdout, and only its hash is
stored. Settings come from `--database` (or `REGWARD_DATABASE_URL`) and the `auth` section of the
gate's `--config` file, which sets `maxTokenLifetime` and `rotationOverlap`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regward.auth.config import AuthSettings, format_duration, load_auth_settings, parse_duration
from regward.auth.scope import Action
from regward.auth.static import StaticToken, StaticTokenStore
from regward.cli.main import EXIT_OK
from regward.gate.settings import DEFAULT_DATABASE, load_config_file
from regward.policy.errors import PatternError
from regward.policy.match import check_repository_pattern
from regward.store.db import Store

logger = logging.getLogger(__name__)


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _actions(text: str) -> list[Action]:
    actions: list[Action] = []
    for part in text.split(","):
        name = part.strip()
        try:
            action = Action(name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"invalid action {name!r}: expected pull, push or delete, comma-separated"
            ) from exc
        if action not in actions:
            actions.append(action)
    return actions


def _repository(text: str) -> str:
    try:
        check_repository_pattern(text)
    except PatternError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}; expected a name such as acme/app, or a glob such as acme/* or acme/**"
        ) from exc
    return text


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        help=f"SQLAlchemy URL of the regward database (default: REGWARD_DATABASE_URL, the "
        f"`database` key of --config, or {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--config",
        help="the gate's YAML config file; its `auth` section sets maxTokenLifetime and "
        "rotationOverlap",
    )


def register(subparsers: Any) -> None:
    """Add `regward token` and its subcommands."""
    parser = subparsers.add_parser(
        "token",
        help="manage static scoped registry tokens",
        description=(
            "Static tokens authenticate pipelines that cannot use CI OIDC. A token is presented "
            "as the password, with any username. Prefer pull-only tokens; push is better left "
            "to CI OIDC identities."
        ),
    )
    commands = parser.add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create a token and print it once")
    create.add_argument(
        "--repository",
        action="append",
        required=True,
        type=_repository,
        help="repository name or glob the token covers; repeat for more",
    )
    create.add_argument(
        "--actions",
        type=_actions,
        default=[Action.PULL],
        help="comma-separated actions: pull, push, delete (default: pull)",
    )
    create.add_argument(
        "--expires",
        type=_duration,
        required=True,
        help="lifetime such as 30d, 12h or 2w; at most auth.maxTokenLifetime (default 90d)",
    )
    create.add_argument("--description", required=True, help="what the token is for")
    _add_common(create)
    create.set_defaults(handler=_cmd_create)

    listing = commands.add_parser("list", help="list tokens without their secrets")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    _add_common(listing)
    listing.set_defaults(handler=_cmd_list)

    revoke = commands.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="token id from `regward token list`")
    _add_common(revoke)
    revoke.set_defaults(handler=_cmd_revoke)

    rotate = commands.add_parser(
        "rotate", help="give a token a new secret; the old one works for auth.rotationOverlap"
    )
    rotate.add_argument("id", help="token id from `regward token list`")
    rotate.add_argument(
        "--expires", type=_duration, help="new lifetime from now (default: keep the expiry)"
    )
    _add_common(rotate)
    rotate.set_defaults(handler=_cmd_rotate)


def _open(args: argparse.Namespace) -> tuple[Store, StaticTokenStore, AuthSettings]:
    config: dict[str, Any] = {}
    config_dir = Path(".")
    if args.config:
        config = load_config_file(Path(args.config))
        config_dir = Path(args.config).parent
    settings = load_auth_settings(config.get("auth"), config_dir)
    url = (
        args.database
        or os.environ.get("REGWARD_DATABASE_URL")
        or config.get("database")
        or DEFAULT_DATABASE
    )
    store = Store(str(url))
    try:
        store.migrate()
    except Exception:
        store.close()
        raise
    tokens = StaticTokenStore(
        store.engine,
        max_lifetime=settings.max_token_lifetime,
        rotation_overlap=settings.rotation_overlap,
        clock=time.time,
    )
    return store, tokens, settings


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cmd_create(args: argparse.Namespace) -> int:
    store, tokens, settings = _open(args)
    with store:
        issued = tokens.create(
            repositories=args.repository,
            actions=args.actions,
            expires_in=args.expires,
            description=args.description,
        )
    token = issued.token
    print(issued.secret)
    print(
        f"created token {token.id} for {', '.join(token.repositories)} "
        f"({','.join(str(a) for a in token.actions)}), expires {_when(token.expires_at)}.\n"
        "The token is shown only now; store it in the pipeline's secret store. Use it as the "
        "password with any username.",
        file=sys.stderr,
    )
    if Action.PUSH in token.actions and settings.push_requires_oidc:
        print(
            "note: auth.pushRequiresOidc is on, so this token cannot push to repositories that "
            "policy rules protect.",
            file=sys.stderr,
        )
    return EXIT_OK


def _row(token: StaticToken, now: datetime) -> dict[str, Any]:
    return {
        "id": token.id,
        "status": token.status(now),
        "repositories": list(token.repositories),
        "actions": [str(a) for a in token.actions],
        "created": _when(token.created_at),
        "expires": _when(token.expires_at),
        "revoked": _when(token.revoked_at) if token.revoked_at else None,
        "rotated": _when(token.rotated_at) if token.rotated_at else None,
        "last_used": _when(token.last_used_at) if token.last_used_at else None,
        "last_used_address": token.last_used_address,
        "description": token.description,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    store, tokens, _settings = _open(args)
    with store:
        listed = tokens.list_tokens()
    now = datetime.now(UTC)
    rows = [_row(token, now) for token in listed]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("ID", "STATUS", "ACTIONS", "EXPIRES", "LAST USED", "REPOSITORIES", "DESCRIPTION")
    table = [header] + [
        (
            row["id"],
            row["status"],
            ",".join(row["actions"]),
            row["expires"],
            row["last_used"] or "never",
            ",".join(row["repositories"]),
            row["description"],
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]).rstrip())
    return EXIT_OK


def _cmd_revoke(args: argparse.Namespace) -> int:
    store, tokens, _settings = _open(args)
    with store:
        token = tokens.revoke(args.id)
    print(f"revoked token {token.id} ({token.description})", file=sys.stderr)
    return EXIT_OK


def _cmd_rotate(args: argparse.Namespace) -> int:
    store, tokens, settings = _open(args)
    with store:
        issued = tokens.rotate(args.id, expires_in=args.expires)
    print(issued.secret)
    print(
        f"rotated token {issued.token.id}; the previous secret works until "
        f"{_when(issued.token.previous_valid_until)} "
        f"(auth.rotationOverlap {format_duration(settings.rotation_overlap)}), "
        f"the token expires {_when(issued.token.expires_at)}.",
        file=sys.stderr,
    )
    return EXIT_OK
