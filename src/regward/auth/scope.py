"""Docker token scopes, repository names, actions, and the glob patterns used on OIDC claims.

A scope is `type[(class)]:name:action[,action…]`, for example `repository:acme/app:pull,push` or
`registry:catalog:*`, as the Docker registry token specification defines it. The name may itself
contain `:` (a `host:port/` prefix), so the type ends at the first `:` and the actions start after
the last one. `parse_scope` returns None for a scope that does not parse, and `parse_scopes`
drops it, because the token endpoint grants the part of a request it can (a partial grant).
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_SCOPES = 32
"""Upper bound on scopes read from one token request; the rest are dropped."""

MAX_NAME_LENGTH = 255
"""Maximum repository name length, the limit CNCF distribution applies."""

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
"""The repository name grammar of the OCI distribution specification."""

_TYPE = re.compile(r"([a-z0-9]+)(?:\(([a-z0-9]+)\))?")


class Action(enum.StrEnum):
    """An action on a repository that a grant or token may allow."""

    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"

    def __str__(self) -> str:
        return self.value


ALL_ACTIONS = frozenset(Action)
CATALOG_ACTION = "*"
"""The only action of the `registry:catalog` resource."""


@dataclass(frozen=True)
class ResourceScope:
    """One resource and the actions requested or granted on it."""

    type: str
    """`repository` or `registry`."""
    name: str
    """The repository name, or `catalog` for the `registry` type."""
    actions: tuple[str, ...]
    """Actions in request order without duplicates, e.g. `("pull", "push")` or `("*",)`."""
    resource_class: str | None = None
    """The optional class in `repository(plugin):…`, echoed but never used for decisions."""

    def format(self) -> str:
        """Return the scope in the `type[(class)]:name:actions` form."""
        type_text = (
            self.type if self.resource_class is None else f"{self.type}({self.resource_class})"
        )
        return f"{type_text}:{self.name}:{','.join(self.actions)}"

    def access_entry(self) -> dict[str, object]:
        """Return the `access` claim entry (`type`, `name`, `actions`, optional `class`)."""
        entry: dict[str, object] = {
            "type": self.type,
            "name": self.name,
            "actions": list(self.actions),
        }
        if self.resource_class is not None:
            entry["class"] = self.resource_class
        return entry


def is_repository_name(name: str) -> bool:
    """Return whether `name` is a valid repository name of at most 255 characters."""
    return len(name) <= MAX_NAME_LENGTH and REPOSITORY_NAME.fullmatch(name) is not None


def parse_scope(text: str) -> ResourceScope | None:
    """Parse one scope string, returning None when it is malformed or names an unknown resource.

    Unknown actions are dropped. A `repository` scope keeps pull, push and delete, and `*`
    stands for all three. A `registry` scope is kept only as `registry:catalog:*`.
    """
    type_text, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    type_match = _TYPE.fullmatch(type_text)
    if type_match is None:
        return None
    resource_type, resource_class = type_match.group(1), type_match.group(2)
    requested = [action.strip() for action in actions_text.split(",") if action.strip()]

    if resource_type == "repository":
        if not is_repository_name(name):
            return None
        actions: list[str] = []
        for action in requested:
            expanded = [str(a) for a in Action] if action == CATALOG_ACTION else [action]
            actions.extend(a for a in expanded if a in ALL_ACTIONS and a not in actions)
        if not actions:
            return None
        return ResourceScope("repository", name, tuple(actions), resource_class)

    if resource_type == "registry" and name == "catalog" and CATALOG_ACTION in requested:
        return ResourceScope("registry", "catalog", (CATALOG_ACTION,), resource_class)
    return None


def parse_scopes(values: Iterable[str]) -> list[ResourceScope]:
    """Parse `scope` parameters, each possibly holding several space-separated scopes.

    Malformed scopes are dropped with a debug log and at most `MAX_SCOPES` are returned. Scopes on
    the same resource are merged into one entry.
    """
    merged: dict[tuple[str, str, str | None], list[str]] = {}
    for value in values:
        for text in value.split():
            scope = parse_scope(text)
            if scope is None:
                logger.debug("dropped malformed or unsupported scope %r", text[:300])
                continue
            key = (scope.type, scope.name, scope.resource_class)
            if key not in merged and len(merged) >= MAX_SCOPES:
                logger.debug("dropped scope beyond the first %d: %r", MAX_SCOPES, text[:300])
                continue
            actions = merged.setdefault(key, [])
            actions.extend(a for a in scope.actions if a not in actions)
    return [
        ResourceScope(type_, name, tuple(actions), resource_class)
        for (type_, name, resource_class), actions in merged.items()
    ]


@functools.lru_cache(maxsize=1024)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts), re.DOTALL)


def glob_match(pattern: str, value: str) -> bool:
    """Match a claim value against a glob where `*` and `?` stay within one `/`-separated segment.

    `**` matches any characters including `/`, so `refs/heads/*` matches `refs/heads/main` but
    not `refs/heads/team/x`, and `refs/heads/**` matches both. Every other character is literal.
    Repository globs use the policy file's syntax instead (`regward.policy.match`).
    """
    return _compile_glob(pattern).fullmatch(value) is not None
