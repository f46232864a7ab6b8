"""Every comparison vector from osv-scalibr is satisfied in both directions."""

from __future__ import annotations

import pytest

from regward.vulns import versions

from .conftest import vulns_asset

EXPECTED = {"<": -1, "=": 0, ">": 1}

# (vector file, ecosystem it is checked against, number of vectors in the file)
VECTOR_FILES = [
    ("alpine-versions.txt", "Alpine", 583),
    ("alpine-versions-generated.txt", "Alpine", 10484),
    ("debian-versions.txt", "Debian", 22),
    ("debian-versions-generated.txt", "Debian", 10831),
    ("pypi-versions.txt", "PyPI", 27),
    ("pypi-versions-generated.txt", "PyPI", 9281),
    ("redhat-versions.txt", "Red Hat", 123),
    ("semver-versions.txt", "npm", 64),
    ("semver-versions.txt", "Go", 64),
    ("semver-versions.txt", "crates.io", 64),
    ("semver-versions.txt", "Hex", 64),
    ("pub-versions.txt", "Pub", 75),
    ("hackage-versions.txt", "Hackage", 8),
]


def read_vectors(filename: str) -> list[tuple[str, str, str]]:
    """Return the `(a, op, b)` lines of a vector file, skipping `# ` and `// ` comments."""
    vectors = []
    for line in vulns_asset(f"versions/{filename}").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("# ", "// ")):
            continue
        left, operator, right = line.split(" ")
        vectors.append((left, operator, right))
    return vectors


@pytest.mark.parametrize(("filename", "ecosystem", "count"), VECTOR_FILES, ids=lambda v: str(v))
def test_vectors_hold_both_ways(filename: str, ecosystem: str, count: int) -> None:
    vectors = read_vectors(filename)
    assert len(vectors) == count
    failures = []
    for left, operator, right in vectors:
        expected = EXPECTED[operator]
        forward = versions.compare(ecosystem, left, right)
        backward = versions.compare(ecosystem, right, left)
        if (forward, backward) != (expected, -expected):
            failures.append(f"{left} {operator} {right}: got {forward} and reversed {backward}")
    assert failures == [], f"{len(failures)} of {count} vectors failed: {failures[:20]}"


@pytest.mark.parametrize(("filename", "ecosystem"), [(f, e) for f, e, _ in VECTOR_FILES])
def test_vector_keys_sort_consistently(filename: str, ecosystem: str) -> None:
    ordering = versions.ordering_for(ecosystem)
    for left, operator, right in read_vectors(filename):
        key_left, key_right = ordering.key(left), ordering.key(right)
        if operator == "<":
            assert key_left < key_right, (left, right)
            assert not key_right < key_left, (left, right)
        elif operator == ">":
            assert key_right < key_left, (left, right)
            assert not key_left < key_right, (left, right)
        else:
            assert key_left == key_right, (left, right)
