"""Repository globs, rule selection and tag immutability.

Repository globs work on `/`-separated path segments:

- `*` matches any run of characters inside one segment, including none;
- `?` matches exactly one character other than `/`;
- `**` must be a whole segment and matches zero or more whole segments, so `test/**` matches
  `test`, `test/a` and `test/a/b`, `a/**/b` matches `a/b` and `a/x/y/b`, and `**` alone
  matches every repository.

Character classes (`[...]`) are not supported. Repository names are lower-case (OCI
distribution spec), so globs may contain only `a-z`, `0-9`, `.`, `_`, `-`, `/`, `*` and `?`.

When several rules match a repository, the most specific one wins. A rule's specificity is
that of its most specific pattern that matches. Patterns compare by these keys, in order:

1. a literal pattern (no wildcard) beats any glob;
2. more literal segments (segments without `*`, `?` or `**`) win;
3. more literal characters (characters other than `*`, `?` and `/`) win;
4. fewer `**` segments win, so `team/*` beats `team/**`.

Remaining ties go to the rule that comes first in the policy file.

Tag patterns use `*` and `?` on the whole tag, as `fnmatch` does, and are case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from regward.policy.errors import PatternError
from regward.policy.model import Policy, Rule

MAX_REPOSITORY_PATTERN_LENGTH = 255
"""Maximum length of a repository glob, the usual limit for a full image name."""

MAX_TAG_PATTERN_LENGTH = 128
"""Maximum length of a tag pattern, the maximum tag length in the OCI distribution spec."""

_REPOSITORY_SEGMENT_CHARS = re.compile(r"[a-z0-9._*?-]+")
_TAG_PATTERN_CHARS = re.compile(r"[A-Za-z0-9._*?-]+")

# Tags that cosign and the OCI referrers tag-schema fallback create for a digest:
# `sha256-<hex>` (referrers index), `.sig` (signature), `.att` (attestation), `.sbom` (SBOM).
_ACCESSORY_TAG = re.compile(r"sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?")

Specificity = tuple[int, int, int, int]
"""Sort key of a repository glob; a greater key is more specific (see the module docstring)."""


def check_repository_pattern(pattern: str) -> None:
    """Raise PatternError unless `pattern` is a valid repository glob.

    Raises:
        PatternError: names the pattern and the first mistake found in it.
    """
    if not pattern:
        raise PatternError(pattern, "expected a non-empty glob")
    if len(pattern) > MAX_REPOSITORY_PATTERN_LENGTH:
        raise PatternError(
            pattern,
            f"expected at most {MAX_REPOSITORY_PATTERN_LENGTH} characters, got {len(pattern)}",
        )
    for segment in pattern.split("/"):
        if not segment:
            raise PatternError(pattern, "empty path segment (leading, trailing or double '/')")
        if segment == "**":
            continue
        if "**" in segment:
            raise PatternError(
                pattern, f"'**' must be a whole path segment, as in 'team/**', got {segment!r}"
            )
        if _REPOSITORY_SEGMENT_CHARS.fullmatch(segment) is None:
            bad = next(
                char for char in segment if _REPOSITORY_SEGMENT_CHARS.fullmatch(char) is None
            )
            raise PatternError(
                pattern,
                f"unexpected character {bad!r}: repository globs may contain only lower-case "
                "letters, digits, '.', '_', '-', '/', '*' and '?'",
            )


def check_tag_pattern(pattern: str) -> None:
    """Raise PatternError unless `pattern` is a valid tag pattern.

    Raises:
        PatternError: names the pattern and what is wrong in it.
    """
    if not pattern:
        raise PatternError(pattern, "expected a non-empty tag pattern")
    if len(pattern) > MAX_TAG_PATTERN_LENGTH:
        raise PatternError(
            pattern, f"expected at most {MAX_TAG_PATTERN_LENGTH} characters, got {len(pattern)}"
        )
    if _TAG_PATTERN_CHARS.fullmatch(pattern) is None:
        bad = next(char for char in pattern if _TAG_PATTERN_CHARS.fullmatch(char) is None)
        raise PatternError(
            pattern,
            f"unexpected character {bad!r}: tag patterns may contain only letters, digits, "
            "'.', '_', '-', '*' and '?'",
        )


def _segment_regex(segment: str) -> str:
    # The lookahead keeps a segment of only `*` from matching an empty segment.
    parts: list[str] = ["(?=[^/])"]
    for char in segment:
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


@lru_cache(maxsize=1024)
def _compile_repository_pattern(pattern: str) -> re.Pattern[str]:
    check_repository_pattern(pattern)
    segments = pattern.split("/")
    # Consecutive `**` segments match the same set as one, and collapsing them avoids
    # nested quantifiers that backtrack badly.
    collapsed: list[str] = []
    for segment in segments:
        if segment == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(segment)
    if collapsed == ["**"]:
        return re.compile(r"[^/]+(?:/[^/]+)*")

    parts: list[str] = []
    for index, segment in enumerate(collapsed):
        if segment == "**":
            # A leading `**` consumes its own trailing slash; elsewhere it brings the slash
            # that precedes each segment it matches.
            parts.append("(?:[^/]+/)*" if index == 0 else "(?:/[^/]+)*")
            continue
        leading_slash = index > 0 and not (index == 1 and collapsed[0] == "**")
        parts.append(("/" if leading_slash else "") + _segment_regex(segment))
    return re.compile("".join(parts))


def glob_match(pattern: str, repository: str) -> bool:
    """Return whether the repository glob `pattern` matches `repository`.

    Raises:
        PatternError: `pattern` is not a valid repository glob.
    """
    return _compile_repository_pattern(pattern).fullmatch(repository) is not None


@lru_cache(maxsize=1024)
def specificity(pattern: str) -> Specificity:
    """Return the sort key of a repository glob; a greater key is more specific.

    Raises:
        PatternError: `pattern` is not a valid repository glob.
    """
    check_repository_pattern(pattern)
    segments = pattern.split("/")
    is_literal = int("*" not in pattern and "?" not in pattern)
    literal_segments = sum(1 for segment in segments if "*" not in segment and "?" not in segment)
    literal_chars = sum(1 for char in pattern if char not in "*?/")
    double_stars = sum(1 for segment in segments if segment == "**")
    return (is_literal, literal_segments, literal_chars, -double_stars)


def rule_specificity(rule: Rule, repository: str) -> Specificity | None:
    """Return the specificity of the most specific pattern of `rule` matching `repository`.

    Returns None when no pattern of the rule matches.
    """
    best: Specificity | None = None
    for pattern in rule.repositories:
        if not glob_match(pattern, repository):
            continue
        key = specificity(pattern)
        if best is None or key > best:
            best = key
    return best


def select_rule(policy: Policy, repository: str) -> Rule | None:
    """Return the most specific rule of `policy` that matches `repository`, or None.

    Ties go to the rule that comes first in the policy file.
    """
    selected: Rule | None = None
    selected_key: Specificity | None = None
    for rule in policy.rules:
        key = rule_specificity(rule, repository)
        # A strict comparison keeps the earlier rule on a tie.
        if key is not None and (selected_key is None or key > selected_key):
            selected, selected_key = rule, key
    return selected


@lru_cache(maxsize=1024)
def _compile_tag_pattern(pattern: str) -> re.Pattern[str]:
    check_tag_pattern(pattern)
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def tag_matches(patterns: Iterable[str], tag: str) -> bool:
    """Return whether any of the tag `patterns` matches `tag`.

    Raises:
        PatternError: one of the patterns is not a valid tag pattern.
    """
    return any(_compile_tag_pattern(pattern).fullmatch(tag) is not None for pattern in patterns)


def is_accessory_tag(tag: str) -> bool:
    """Return whether `tag` names a cosign or referrers-fallback accessory of a digest.

    These are `sha256-<64 hex>` optionally followed by `.sig`, `.att` or `.sbom`. Signing tools
    move them whenever a signature or attestation is added, so they are never immutable.
    """
    return _ACCESSORY_TAG.fullmatch(tag) is not None


def is_immutable_tag(rule: Rule | None, tag: str) -> bool:
    """Return whether pushing `tag` under `rule` may not move the tag to another digest.

    A tag is immutable when the rule has an `immutableTags` section, one of its patterns
    matches the tag, no exclude pattern matches, and the tag is not an accessory tag.
    """
    if rule is None or rule.immutable_tags is None:
        return False
    if is_accessory_tag(tag):
        return False
    section = rule.immutable_tags
    return tag_matches(section.patterns, tag) and not tag_matches(section.exclude, tag)
