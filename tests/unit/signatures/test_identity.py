"""Keyless identity policies: exact values, whole-value patterns, invalid settings."""

from __future__ import annotations

import pytest

from regward.signatures import (
    CertificateIdentity,
    IdentityPolicy,
    InvalidAuthorityError,
    KeylessAuthority,
    SignatureVerificationError,
    TrustRoot,
)

ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main"


def identity(*subjects: str, issuer: str | None = ISSUER) -> CertificateIdentity:
    return CertificateIdentity(subjects=subjects, issuer=issuer)


def test_exact_subject_among_several_sans() -> None:
    policy = IdentityPolicy(issuer=ISSUER, subject="dev@acme.example")

    policy.check(identity(WORKFLOW, "dev@acme.example"))


@pytest.mark.parametrize(
    ("pattern", "subject", "accepted"),
    [
        (r"https://github\.com/acme/.+", WORKFLOW, True),
        (r"https://github\.com/acme/", WORKFLOW, False),
        (r"acme", WORKFLOW, False),
        (r".*@acme\.example", "dev@acme.example", True),
        (r".*@acme\.example", "dev@acme.example.evil.test", False),
        (r"dev@acme\.example", "eve-dev@acme.example", False),
    ],
)
def test_subject_pattern_matches_whole_value(pattern: str, subject: str, accepted: bool) -> None:
    policy = IdentityPolicy(issuer=ISSUER, subject_regexp=pattern)

    if accepted:
        policy.check(identity(subject))
    else:
        with pytest.raises(SignatureVerificationError, match="subject does not match"):
            policy.check(identity(subject))


def test_issuer_pattern() -> None:
    pattern = r"https://(token\.actions\.githubusercontent|accounts\.google)\.com"
    policy = IdentityPolicy(issuer_regexp=pattern, subject=WORKFLOW)

    policy.check(identity(WORKFLOW, issuer=ISSUER))
    with pytest.raises(SignatureVerificationError, match="issuer does not match"):
        policy.check(identity(WORKFLOW, issuer=ISSUER + ".evil.test"))


def test_missing_issuer_rejected() -> None:
    policy = IdentityPolicy(issuer=ISSUER, subject=WORKFLOW)

    with pytest.raises(SignatureVerificationError, match="issuer does not match: got None"):
        policy.check(identity(WORKFLOW, issuer=None))


def test_overlong_value_never_matches() -> None:
    policy = IdentityPolicy(issuer=ISSUER, subject_regexp=".*")

    with pytest.raises(SignatureVerificationError):
        policy.check(identity("x" * 5000))


@pytest.mark.parametrize(
    "settings",
    [
        {"subject": WORKFLOW},
        {"issuer": ISSUER},
        {"issuer": ISSUER, "issuer_regexp": ".*", "subject": WORKFLOW},
        {"issuer": ISSUER, "subject": WORKFLOW, "subject_regexp": ".*"},
    ],
    ids=["no-issuer", "no-subject", "two-issuers", "two-subjects"],
)
def test_incomplete_identity_rejected(settings: dict[str, str]) -> None:
    with pytest.raises(InvalidAuthorityError, match="exactly one of"):
        IdentityPolicy(**settings)  # type: ignore[arg-type]


def test_invalid_pattern_rejected() -> None:
    with pytest.raises(InvalidAuthorityError, match="not a valid regular expression"):
        KeylessAuthority("gha", TrustRoot.public_good(), issuer=ISSUER, subject_regexp="(")


def test_describe_names_patterns() -> None:
    policy = IdentityPolicy(issuer=ISSUER, subject_regexp="a.+")

    assert policy.describe() == f"/a.+/ (issuer {ISSUER})"
