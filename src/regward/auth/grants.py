"""Identities and their grants: what a verified credential may do on which repositories.

An identity comes from a CI OIDC token (named `<policy>:<sub>`) or from a static token (named
`token:<id>`). Its grants are repository globs with actions. Repository globs have the policy file's
syntax (`regward.policy.match`): `*` and `?` within one path segment, `**` as a whole segment for
any number of segments. The catalog, which lists every repository name, is allowed only to an
identity that may pull every repository (a grant on `**`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from regward.auth.scope import CATALOG_ACTION, Action, ResourceScope
from regward.policy.errors import PatternError
from regward.policy.match import glob_match as repository_glob_match


def repository_matches(pattern: str, repository: str) -> bool:
    """Return whether a repository glob matches; an invalid glob matches nothing."""
    try:
        return repository_glob_match(pattern, repository)
    except PatternError:
        return False


class IdentityKind(enum.StrEnum):
    """The kind of credential an identity presented."""

    OIDC = "oidc"
    STATIC = "static"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Grant:
    """Actions allowed on the repositories whose names match one of the globs."""

    repositories: tuple[str, ...]
    """Repository globs in the policy file's syntax."""
    actions: frozenset[Action]


@dataclass(frozen=True)
class Identity:
    """A verified caller and everything it may do."""

    name: str
    """Audit name: `<policy>:<sub>` for OIDC, `token:<id>` for static tokens."""
    kind: IdentityKind
    grants: tuple[Grant, ...]
    expires: float
    """Unix time the presented credential expires; tokens issued from a static token end by then."""
    policies: tuple[str, ...] = ()
    """OIDC trust policies whose grants matched, in config order."""
    token_id: str | None = None
    """Static token id."""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """Verified OIDC claims that are strings, numbers or booleans; empty for static tokens."""

    def allowed_actions(
        self, repository: str, *, protected: Callable[[str], bool], push_requires_oidc: bool
    ) -> frozenset[Action]:
        """Return the actions this identity may perform on `repository`.

        With `push_requires_oidc`, a static token loses push on repositories for which `protected`
        returns true.
        """
        allowed: set[Action] = set()
        for grant in self.grants:
            if any(repository_matches(pattern, repository) for pattern in grant.repositories):
                allowed |= grant.actions
        if (
            push_requires_oidc
            and self.kind is IdentityKind.STATIC
            and Action.PUSH in allowed
            and protected(repository)
        ):
            allowed.discard(Action.PUSH)
        return frozenset(allowed)

    def may_list_catalog(self) -> bool:
        """Return whether a grant allows pull on every repository (the `**` pattern)."""
        return any(
            "**" in grant.repositories and Action.PULL in grant.actions for grant in self.grants
        )


def grant_scopes(
    identity: Identity,
    requested: list[ResourceScope],
    *,
    protected: Callable[[str], bool],
    push_requires_oidc: bool,
) -> tuple[list[ResourceScope], list[ResourceScope]]:
    """Intersect requested scopes with what `identity` may do (a partial grant).

    Returns:
        The granted scopes (only those with at least one action) and the requested scopes that
        lost some or all of their actions, for the audit log.
    """
    granted: list[ResourceScope] = []
    reduced: list[ResourceScope] = []
    for scope in requested:
        if scope.type == "registry":
            actions: tuple[str, ...] = (CATALOG_ACTION,) if identity.may_list_catalog() else ()
        else:
            allowed = identity.allowed_actions(
                scope.name, protected=protected, push_requires_oidc=push_requires_oidc
            )
            actions = tuple(a for a in scope.actions if a in allowed)
        if actions:
            granted.append(ResourceScope(scope.type, scope.name, actions, scope.resource_class))
        if actions != scope.actions:
            reduced.append(scope)
    return granted, reduced
