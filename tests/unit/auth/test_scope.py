"""Scope grammar, repository names and grant globs."""

from __future__ import annotations

import pytest

from regward.auth.scope import MAX_SCOPES, ResourceScope, glob_match, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:test/app:pull", ResourceScope("repository", "test/app", ("pull",))),
        (
            "repository:test/app:push,pull",
            ResourceScope("repository", "test/app", ("push", "pull")),
        ),
        (
            "repository:test/app:*",
            ResourceScope("repository", "test/app", ("pull", "push", "delete")),
        ),
        (
            "repository(plugin):test/app:pull",
            ResourceScope("repository", "test/app", ("pull",), "plugin"),
        ),
        ("registry:catalog:*", ResourceScope("registry", "catalog", ("*",))),
        (
            "repository:test/app:pull,frobnicate",
            ResourceScope("repository", "test/app", ("pull",)),
        ),
    ],
)
def test_parse_scope_valid(text: str, expected: ResourceScope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:test/app",
        "repository::pull",
        "repository:Test/App:pull",
        "repository:test/app:frobnicate",
        "repository:../etc:pull",
        "registry:catalog:pull",
        "registry:other:*",
        "user:test/app:pull",
        "repository:" + "a" * 256 + ":pull",
    ],
)
def test_parse_scope_rejects(text: str) -> None:
    assert parse_scope(text) is None


def test_scope_format_round_trip() -> None:
    for text in ("repository:test/app:pull,push", "registry:catalog:*", "repository(x):a/b:pull"):
        scope = parse_scope(text)
        assert scope is not None
        assert scope.format() == text


def test_parse_scopes_merges_and_splits() -> None:
    scopes = parse_scopes(
        ["repository:test/app:pull repository:other/app:pull", "repository:test/app:push", "bad"]
    )
    assert scopes == [
        ResourceScope("repository", "test/app", ("pull", "push")),
        ResourceScope("repository", "other/app", ("pull",)),
    ]


def test_parse_scopes_caps_count() -> None:
    many = [f"repository:r/n{i}:pull" for i in range(MAX_SCOPES + 10)]
    assert len(parse_scopes(many)) == MAX_SCOPES


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("acme/app", "acme/app", True),
        ("acme/app", "acme/app2", False),
        ("acme/*", "acme/app", True),
        ("acme/*", "acme/team/app", False),
        ("acme/**", "acme/team/app", True),
        ("**", "anything/at/all", True),
        ("refs/heads/*", "refs/heads/main", True),
        ("refs/heads/*", "refs/heads/feature/x", False),
        ("refs/tags/v?.*", "refs/tags/v1.2", True),
        ("acme/app", "ACME/app", False),
        ("a.b", "axb", False),
        ("[ab]", "a", False),
    ],
)
def test_glob_match(pattern: str, value: str, matches: bool) -> None:
    assert glob_match(pattern, value) is matches
