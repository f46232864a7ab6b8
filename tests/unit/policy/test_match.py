"""Tests of repository globs, rule precedence, tag patterns and tag immutability."""

from __future__ import annotations

import re

import pytest

from regward.policy import (
    BlobAccess,
    DefaultAction,
    ImmutableTags,
    PatternError,
    Policy,
    Rule,
    glob_match,
    is_accessory_tag,
    is_immutable_tag,
    select_rule,
    specificity,
    tag_matches,
)

DIGEST_HEX = "0123456789abcdef" * 4


def make_policy(*rules: Rule) -> Policy:
    return Policy(
        default_action=DefaultAction.DENY,
        blobs=BlobAccess.REFERENCED_ONLY,
        rules=rules,
        revision="r",
        source="<test>",
    )


@pytest.mark.parametrize(
    ("pattern", "repository", "expected"),
    [
        ("test/app", "test/app", True),
        ("test/app", "test/app2", False),
        ("test/app", "test", False),
        ("test/*", "test/app", True),
        ("test/*", "test/a/b", False),
        ("test/*", "test", False),
        ("test/*", "test/", False),
        ("test/a*", "test/a", True),
        ("test/a*", "test/abc", True),
        ("test/a*c", "test/abbc", True),
        ("test/a*c", "test/abcd", False),
        ("test/?pp", "test/app", True),
        ("test/?pp", "test/pp", False),
        ("test/?", "test/ab", False),
        ("test/**", "test", True),
        ("test/**", "test/a", True),
        ("test/**", "test/a/b", True),
        ("test/**", "testing/a", False),
        ("test/**", "other/test/a", False),
        ("**", "a", True),
        ("**", "a/b/c", True),
        ("**/app", "app", True),
        ("**/app", "team/app", True),
        ("**/app", "team/sub/app", True),
        ("**/app", "team/myapp", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("a/**/b", "ab", False),
        ("a/**/**/b", "a/b", True),
        ("a/**/**/b", "a/x/y/b", True),
        ("*/app", "team/app", True),
        ("*/app", "app", False),
        ("*", "app", True),
        ("*", "team/app", False),
        ("a.b/c", "a.b/c", True),
        ("a.b/c", "axb/c", False),
        ("a-b_c.d/e", "a-b_c.d/e", True),
    ],
)
def test_glob_match(pattern: str, repository: str, expected: bool) -> None:
    assert glob_match(pattern, repository) is expected


@pytest.mark.parametrize("pattern", ["***", "a**", "a/b**", "a//b", "", "A/b", "a/[bc]", "a b"])
def test_glob_match_invalid_pattern(pattern: str) -> None:
    with pytest.raises(PatternError, match=re.escape(f"invalid pattern {pattern!r}: ")):
        glob_match(pattern, "a/b")


def test_glob_too_long() -> None:
    with pytest.raises(PatternError, match=r"expected at most 255 characters, got 256"):
        glob_match("a" * 256, "a")


@pytest.mark.parametrize(
    ("more", "less"),
    [
        ("team/app", "team/*"),  # a literal beats any glob
        ("team/app", "**"),
        ("a/b/c/d", "a/b/c/*"),
        ("team/*/app", "team/**"),  # more literal segments
        ("team/*", "*/app"),  # same literal segments, more literal characters
        ("team/ap*", "team/*"),  # same literal segments, more literal characters
        ("team/*", "team/**"),  # same counts, fewer '**'
        ("**/app", "**"),
    ],
)
def test_specificity_order(more: str, less: str) -> None:
    assert specificity(more) > specificity(less)


def test_specificity_values() -> None:
    assert specificity("team/app") == (1, 2, 7, 0)
    assert specificity("team/**") == (0, 1, 4, -1)
    assert specificity("a/*/b?") == (0, 1, 2, 0)


def test_select_rule_most_specific_wins() -> None:
    broad = Rule(name="broad", repositories=("**",))
    team = Rule(name="team", repositories=("team/**",))
    app = Rule(name="app", repositories=("team/app",))
    policy = make_policy(broad, team, app)

    assert select_rule(policy, "team/app") is app
    assert select_rule(policy, "team/other") is team
    assert select_rule(policy, "team") is team
    assert select_rule(policy, "elsewhere/app") is broad


def test_select_rule_tie_goes_to_earlier_rule() -> None:
    first = Rule(name="first", repositories=("team/*",))
    second = Rule(name="second", repositories=("team/*",))

    assert select_rule(make_policy(first, second), "team/app") is first
    assert select_rule(make_policy(second, first), "team/app") is second


def test_select_rule_uses_best_matching_pattern() -> None:
    # `multi` beats `globbed` on team/app because its literal pattern matches there. On
    # team/web only its broad pattern matches, so `globbed` wins.
    multi = Rule(name="multi", repositories=("**", "team/app"))
    globbed = Rule(name="globbed", repositories=("team/*",))
    policy = make_policy(globbed, multi)

    assert select_rule(policy, "team/app") is multi
    assert select_rule(policy, "team/web") is globbed


def test_select_rule_no_match() -> None:
    policy = make_policy(Rule(name="team", repositories=("team/**",)))

    assert select_rule(policy, "other/app") is None
    assert select_rule(make_policy(), "team/app") is None


@pytest.mark.parametrize(
    ("patterns", "tag", "expected"),
    [
        (("*",), "v1.0", True),
        (("*",), "", True),
        (("v*",), "v1.0", True),
        (("v*",), "release-v1", False),
        (("v?.?",), "v1.0", True),
        (("v?.?",), "v10.0", False),
        (("latest",), "latest", True),
        (("latest",), "Latest", False),  # tags are case-sensitive
        (("v1.*",), "v1x0", False),  # '.' is literal
        (("a", "b*"), "bc", True),
        ((), "v1", False),
    ],
)
def test_tag_matches(patterns: tuple[str, ...], tag: str, expected: bool) -> None:
    assert tag_matches(patterns, tag) is expected


@pytest.mark.parametrize("pattern", ["", "v[12]", "a/b", "a" * 129])
def test_tag_matches_invalid_pattern(pattern: str) -> None:
    with pytest.raises(PatternError):
        tag_matches([pattern], "v1")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (f"sha256-{DIGEST_HEX}", True),
        (f"sha256-{DIGEST_HEX}.sig", True),
        (f"sha256-{DIGEST_HEX}.att", True),
        (f"sha256-{DIGEST_HEX}.sbom", True),
        (f"sha256-{DIGEST_HEX}.foo", False),
        (f"sha256-{DIGEST_HEX[:-1]}.sig", False),
        (f"sha256-{DIGEST_HEX.upper()}.sig", False),
        (f"sha512-{DIGEST_HEX}.sig", False),
        (f"v1-sha256-{DIGEST_HEX}.sig", False),
        ("latest", False),
    ],
)
def test_is_accessory_tag(tag: str, expected: bool) -> None:
    assert is_accessory_tag(tag) is expected


def test_is_immutable_tag() -> None:
    rule = Rule(
        name="r",
        repositories=("**",),
        immutable_tags=ImmutableTags(patterns=("*",), exclude=("latest", "dev-*")),
    )

    assert is_immutable_tag(rule, "v1.0") is True
    assert is_immutable_tag(rule, "latest") is False
    assert is_immutable_tag(rule, "dev-123") is False
    assert is_immutable_tag(rule, "dev") is True


def test_accessory_tags_never_immutable() -> None:
    rule = Rule(name="r", repositories=("**",), immutable_tags=ImmutableTags(("*", "sha256-*"), ()))

    for suffix in ("", ".sig", ".att", ".sbom"):
        assert is_immutable_tag(rule, f"sha256-{DIGEST_HEX}{suffix}") is False
    assert is_immutable_tag(rule, "sha256-notadigest") is True


def test_immutable_only_matching_patterns() -> None:
    rule = Rule(name="r", repositories=("**",), immutable_tags=ImmutableTags(("v*",), ()))

    assert is_immutable_tag(rule, "v2") is True
    assert is_immutable_tag(rule, "main") is False


def test_no_rule_or_section_means_mutable() -> None:
    assert is_immutable_tag(None, "v1") is False
    assert is_immutable_tag(Rule(name="r", repositories=("**",)), "v1") is False
