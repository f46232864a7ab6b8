"""Loading keyless authorities, `count`, `attestations` and `sbomSource` from policy files."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from regward.policy import PolicyError, SbomSource, load_policy
from tests.support.sigstore import PrivateSigstore
from tests.unit.policy.conftest import WritePolicy

ISSUE_EXAMPLE = """\
rules:
  - name: release
    repositories: ["team/**"]
    sbomSource: attested
    signatures:
      count: 1
      authorities:
        - name: gha
          keyless:
            issuer: https://token.actions.githubusercontent.com
            subjectRegExp: "^https://github.com/acme/.+$"
            trustedRoot: {path: trusted_root.json}
    attestations:
      - name: sbom
        predicateType: https://spdx.dev/Document        # CycloneDX: https://cyclonedx.org/bom
        authorities: [{name: ci, key: {path: cosign.pub}}]   # same shape as signatures.authorities
      - name: provenance
        predicateType: https://slsa.dev/provenance/v1   # v0.2 understood too
        authorities: [{name: gha, keyless: {issuer: https://token.actions.githubusercontent.com, subjectRegExp: "^https://github.com/acme/.+$"}}]
        provenance: {builderId: "https://github.com/actions/runner", sourceRepository: "https://github.com/acme/app"}
      - name: scan
        predicateType: https://cosign.sigstore.dev/attestation/vuln/v1
        authorities: [{name: scanner, key: {path: rekor.pub}}]
        maxAge: 24h                                     # from metadata.scanFinishedOn
"""


@pytest.fixture
def trusted_root(key_dir: Path) -> Path:
    return PrivateSigstore().write_trusted_root(key_dir / "trusted_root.json")


def test_issue_example_loads(write_policy: WritePolicy, trusted_root: Path) -> None:
    policy = load_policy(write_policy(ISSUE_EXAMPLE))
    rule = policy.rules[0]

    assert rule.sbom_source is SbomSource.ATTESTED
    assert rule.signatures is not None
    assert rule.signatures.count == 1
    assert rule.signatures.authorities == ()
    keyless = rule.signatures.keyless[0]
    assert keyless.subject_regexp == "^https://github.com/acme/.+$"
    assert keyless.trusted_root.name == str(trusted_root)
    assert [item.name for item in rule.attestations] == ["sbom", "provenance", "scan"]
    provenance = rule.attestations[1]
    assert provenance.keyless[0].trusted_root.name == "public-good"
    assert provenance.provenance is not None
    assert provenance.provenance.source_repository == "https://github.com/acme/app"
    assert rule.attestations[2].max_age == timedelta(hours=24)


def test_trusted_root_changes_revision(write_policy: WritePolicy, trusted_root: Path) -> None:
    first = load_policy(write_policy(ISSUE_EXAMPLE)).revision
    PrivateSigstore().write_trusted_root(trusted_root)

    assert load_policy(write_policy(ISSUE_EXAMPLE)).revision != first


def test_default_sbom_source_is_catalog(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy("rules:\n  - name: a\n    repositories: [x]\n"))

    assert policy.rules[0].sbom_source is SbomSource.CATALOG
    assert policy.rules[0].attestations == ()


def test_pre_v2_predicate_type_normalized(write_policy: WritePolicy) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    attestations:\n"
        "      - name: scan\n        predicateType: cosign.sigstore.dev/attestation/vuln/v1\n"
        "        authorities: [{name: ci, key: {path: cosign.pub}}]\n"
    )

    rule = load_policy(write_policy(text)).rules[0]

    assert rule.attestations[0].predicate_type == "https://cosign.sigstore.dev/attestation/vuln/v1"


def test_named_staging_root(write_policy: WritePolicy) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    signatures:\n      authorities:\n"
        "        - name: s\n          keyless: {issuer: i, subject: s, trustedRoot: {name: staging}}\n"
    )

    rule = load_policy(write_policy(text)).rules[0]

    assert rule.signatures is not None
    assert rule.signatures.keyless[0].trusted_root.name == "staging"


def test_allow_unsigned_without_authorities(write_policy: WritePolicy) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    attestations:\n"
        "      - name: prov\n        predicateType: https://slsa.dev/provenance/v0.2\n"
        "        allowUnsigned: true\n"
    )

    rule = load_policy(write_policy(text)).rules[0]

    assert rule.attestations[0].allow_unsigned
    assert rule.attestations[0].authority_names == ()


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        (
            "keyless: {issuer: i}",
            r"authorities\[0\]\.keyless .*exactly one of 'subject' or 'subjectRegExp'",
        ),
        (
            "keyless: {issuer: i, issuerRegExp: i, subject: s}",
            r"exactly one of 'issuer' or 'issuerRegExp'",
        ),
        ("keyless: {issuer: i, subjectRegExp: '('}", r"subjectRegExp .*invalid regular expression"),
        ("keyless: {issuer: i, subject: s, trustedRoot: {}}", r"trustedRoot .*exactly one of"),
        ("keyless: {issuer: i, subject: s, trustedRoot: {path: absent.json}}", r"cannot read"),
        ("keyless: {issuer: i, subject: s, trustedRoot: {name: prod}}", r"trustedRoot\.name"),
        ("keyless: {issuer: i, subject: s, rekorKey: x}", r"unknown key 'rekorKey'"),
        (
            "keyless: {issuer: i, subject: s}\n          tlog: required",
            r"apply to 'key' authorities",
        ),
        ("key: {path: cosign.pub}\n          keyless: {issuer: i, subject: s}", r"got both"),
    ],
    ids=[
        "no-subject",
        "two-issuers",
        "bad-pattern",
        "empty-root",
        "missing-root",
        "unknown-root-name",
        "unknown-key",
        "tlog-on-keyless",
        "key-and-keyless",
    ],
)
def test_invalid_keyless_authority(write_policy: WritePolicy, snippet: str, problem: str) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    signatures:\n      authorities:\n"
        f"        - name: k\n          {snippet}\n"
    )

    with pytest.raises(PolicyError, match=problem):
        load_policy(write_policy(text))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("predicateType: x", r"at least one authority, or 'allowUnsigned: true'"),
        (
            "predicateType: x\n        authorities: [{name: ci, key: {path: cosign.pub}}]\n"
            "        count: 2",
            r"count 2 is larger than the number of authorities \(1\)",
        ),
        (
            "predicateType: https://spdx.dev/Document\n        allowUnsigned: true\n"
            "        maxAge: 1h",
            r"maxAge needs predicateType https://cosign.sigstore.dev/attestation/vuln/v1",
        ),
        (
            "predicateType: https://spdx.dev/Document\n        allowUnsigned: true\n"
            "        provenance: {builderId: b}",
            r"provenance conditions need predicateType",
        ),
        (
            "predicateType: https://slsa.dev/provenance/v1\n        allowUnsigned: true\n"
            "        provenance: {}",
            r"expected 'builderId', 'sourceRepository' or both",
        ),
        (
            "predicateType: https://cosign.sigstore.dev/attestation/vuln/v1\n"
            "        allowUnsigned: true\n        maxAge: 1 day",
            r"maxAge .*expected a duration such as '24h'",
        ),
        (
            "predicateType: x\n        allowUnsigned: true\n        conditions: {}",
            r"unknown key 'conditions'",
        ),
    ],
    ids=[
        "no-authorities",
        "count-too-large",
        "max-age-on-sbom",
        "provenance-on-sbom",
        "empty-provenance",
        "bad-duration",
        "unknown-key",
    ],
)
def test_invalid_attestation(write_policy: WritePolicy, entry: str, problem: str) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    attestations:\n"
        f"      - name: att\n        {entry}\n"
    )

    with pytest.raises(PolicyError, match=problem):
        load_policy(write_policy(text))


def test_duplicate_attestation_names(write_policy: WritePolicy) -> None:
    entry = "      - name: sbom\n        predicateType: x\n        allowUnsigned: true\n"
    text = "rules:\n  - name: a\n    repositories: [x]\n    attestations:\n" + entry + entry

    with pytest.raises(PolicyError, match=r"duplicate attestation name 'sbom'"):
        load_policy(write_policy(text))


def test_invalid_sbom_source(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    sbomSource: registry\n"

    with pytest.raises(PolicyError, match=r"sbomSource .*'catalog' or 'attested'"):
        load_policy(write_policy(text))


def test_signature_count_larger_than_authorities(write_policy: WritePolicy) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    signatures:\n      count: 3\n"
        "      authorities: [{name: ci, key: {path: cosign.pub}}]\n"
    )

    with pytest.raises(PolicyError, match=r"count 3 is larger"):
        load_policy(write_policy(text))


def test_invalid_trusted_root_file(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "broken.json").write_text(json.dumps({"mediaType": "nope"}))
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    signatures:\n      authorities:\n"
        "        - name: k\n          keyless: {issuer: i, subject: s, "
        "trustedRoot: {path: broken.json}}\n"
    )

    with pytest.raises(PolicyError, match=r"trustedRoot .*not a valid trusted root"):
        load_policy(write_policy(text))
