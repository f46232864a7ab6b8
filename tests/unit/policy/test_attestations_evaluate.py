"""Evaluation of attestation requirements, signature counts and index denial messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regward.policy import (
    AttestationEvidence,
    AttestationRule,
    Authority,
    AuthorityEvidence,
    BlobAccess,
    DefaultAction,
    EvidenceStatus,
    Facts,
    IndexPolicy,
    OnError,
    Policy,
    ProvenanceCondition,
    Rule,
    SignatureRequirement,
    StatementFacts,
    Verdict,
    evaluate,
)

DIGEST = "sha256:" + "ab" * 32
CHILD_A = "sha256:" + "0a" * 32
CHILD_B = "sha256:" + "0b" * 32
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SPDX = "https://spdx.dev/Document"
SLSA = "https://slsa.dev/provenance/v1"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
BUILDER = "https://github.com/actions/runner"
SOURCE = "https://github.com/acme/app"

VERIFIED = EvidenceStatus.VERIFIED
MISSING = EvidenceStatus.MISSING
INVALID = EvidenceStatus.INVALID
ERROR = EvidenceStatus.ERROR

POLICY = Policy(
    default_action=DefaultAction.DENY,
    blobs=BlobAccess.REFERENCED_ONLY,
    rules=(),
    revision="f" * 64,
    source="<test>",
)


def key(name: str) -> Authority:
    return Authority(
        name=name,
        key_pem=b"-----BEGIN PUBLIC KEY-----\n",
        signature_repository=None,
        rekor_public_key_pem=None,
        tlog="optional",
    )


SBOM = AttestationRule(name="sbom", predicate_type=SPDX, authorities=(key("ci"),))
PROVENANCE = AttestationRule(
    name="provenance",
    predicate_type=SLSA,
    authorities=(key("gha"),),
    provenance=ProvenanceCondition(builder_id=BUILDER, source_repository=SOURCE),
)
SCAN = AttestationRule(
    name="scan", predicate_type=VULN, authorities=(key("scanner"),), max_age=timedelta(hours=24)
)


def rule(*attestations: AttestationRule, on_error: OnError = OnError.DENY) -> Rule:
    return Rule(
        name="release",
        repositories=("team/**",),
        on_error=on_error,
        attestations=attestations,
    )


def facts(*evidence: AttestationEvidence, inherited_from: str | None = None) -> Facts:
    return Facts(
        repository="team/app",
        digest=DIGEST,
        is_index=False,
        signatures=(),
        attestations=evidence,
        now=NOW,
        inherited_from=inherited_from,
    )


def verified(name: str, *statements: StatementFacts) -> AttestationEvidence:
    return AttestationEvidence(name=name, status=VERIFIED, statements=statements)


def sbom_statement(authority: str = "ci") -> StatementFacts:
    return StatementFacts(predicate_type=SPDX, authority=authority)


def provenance_statement(
    builder: str = BUILDER, sources: tuple[str, ...] = (SOURCE,)
) -> StatementFacts:
    return StatementFacts(
        predicate_type=SLSA, authority="gha", builder_id=builder, source_repositories=sources
    )


def scan_statement(age: timedelta) -> StatementFacts:
    return StatementFacts(predicate_type=VULN, authority="scanner", scan_finished=NOW - age)


def codes(decision_reasons: object) -> list[str]:
    return [reason.code for reason in decision_reasons]  # type: ignore[attr-defined]


def test_all_attestations_present_allows() -> None:
    decision = evaluate(
        POLICY,
        rule(SBOM, PROVENANCE, SCAN),
        facts(
            verified("sbom", sbom_statement()),
            verified("provenance", provenance_statement()),
            verified("scan", scan_statement(timedelta(hours=1))),
        ),
    )

    assert decision.verdict is Verdict.ALLOW
    assert decision.reasons == ()
    assert decision.valid_until == NOW + timedelta(hours=23)


def test_one_reason_per_missing_attestation() -> None:
    decision = evaluate(
        POLICY,
        rule(SBOM, PROVENANCE),
        facts(
            AttestationEvidence("sbom", MISSING, reasons=("none",)),
            AttestationEvidence("provenance", MISSING),
        ),
    )

    assert decision.verdict is Verdict.DENY
    assert codes(decision.reasons) == ["attestation-missing", "attestation-missing"]
    assert "attestation 'sbom' (https://spdx.dev/Document) is missing" in decision.message()
    assert "signed by authority 'ci'" in decision.reasons[0].fix


def test_invalid_attestation_reason() -> None:
    decision = evaluate(
        POLICY,
        rule(SBOM),
        facts(AttestationEvidence("sbom", INVALID, reasons=("signature does not verify",))),
    )

    assert codes(decision.reasons) == ["attestation-invalid"]
    assert "signature does not verify" in decision.reasons[0].message


def test_wrong_builder_rejected() -> None:
    decision = evaluate(
        POLICY,
        rule(PROVENANCE),
        facts(verified("provenance", provenance_statement(builder="https://evil.example"))),
    )

    assert codes(decision.reasons) == ["attestation-invalid"]
    assert "builder id 'https://evil.example'" in decision.reasons[0].message


def test_wrong_source_repository_rejected() -> None:
    decision = evaluate(
        POLICY,
        rule(PROVENANCE),
        facts(
            verified(
                "provenance", provenance_statement(sources=("https://github.com/acme/app-fork",))
            )
        ),
    )

    assert decision.verdict is Verdict.DENY
    assert "https://github.com/acme/app-fork is not https://github.com/acme/app" in (
        decision.reasons[0].message
    )


def test_one_matching_provenance_among_several_allows() -> None:
    decision = evaluate(
        POLICY,
        rule(PROVENANCE),
        facts(
            verified(
                "provenance",
                provenance_statement(builder="https://other.example"),
                provenance_statement(),
            )
        ),
    )

    assert decision.verdict is Verdict.ALLOW


def test_stale_scan_denied() -> None:
    decision = evaluate(
        POLICY, rule(SCAN), facts(verified("scan", scan_statement(timedelta(hours=30))))
    )

    assert codes(decision.reasons) == ["attestation-stale"]
    assert "more than maxAge 24h0m" in decision.reasons[0].message


def test_future_scan_beyond_skew_denied() -> None:
    decision = evaluate(
        POLICY, rule(SCAN), facts(verified("scan", scan_statement(-timedelta(minutes=10))))
    )

    assert codes(decision.reasons) == ["attestation-stale"]
    assert "in the future" in decision.reasons[0].message


def test_future_scan_within_skew_allowed() -> None:
    decision = evaluate(
        POLICY, rule(SCAN), facts(verified("scan", scan_statement(-timedelta(minutes=3))))
    )

    assert decision.verdict is Verdict.ALLOW


def test_scan_age_needs_evaluation_time() -> None:
    no_time = Facts(
        repository="team/app",
        digest=DIGEST,
        is_index=False,
        signatures=(),
        attestations=(verified("scan", scan_statement(timedelta(hours=1))),),
    )

    assert evaluate(POLICY, rule(SCAN), no_time).verdict is Verdict.DENY


def test_count_needs_distinct_authorities() -> None:
    two = AttestationRule(
        name="sbom", predicate_type=SPDX, authorities=(key("ci"), key("audit")), count=2
    )

    one_signer = evaluate(POLICY, rule(two), facts(verified("sbom", sbom_statement("ci"))))
    both = evaluate(
        POLICY,
        rule(two),
        facts(verified("sbom", sbom_statement("ci"), sbom_statement("audit"))),
    )

    assert one_signer.verdict is Verdict.DENY
    assert "signed by 1 of the authorities ci, audit, 2 required" in one_signer.reasons[0].message
    assert both.verdict is Verdict.ALLOW


def test_unsigned_statement_needs_allow_unsigned() -> None:
    unsigned = StatementFacts(predicate_type=SPDX, authority=None)
    lenient = AttestationRule(name="sbom", predicate_type=SPDX, allow_unsigned=True)

    assert evaluate(POLICY, rule(SBOM), facts(verified("sbom", unsigned))).verdict is Verdict.DENY
    assert evaluate(POLICY, rule(lenient), facts(verified("sbom", unsigned))).verdict is (
        Verdict.ALLOW
    )


def test_fetch_error_follows_on_error() -> None:
    error = AttestationEvidence("sbom", ERROR, reasons=("registry unavailable",))

    denied = evaluate(POLICY, rule(SBOM), facts(error))
    allowed = evaluate(POLICY, rule(SBOM, on_error=OnError.ALLOW), facts(error))

    assert denied.verdict is Verdict.DENY
    assert codes(denied.reasons) == ["evidence-unavailable"]
    assert allowed.verdict is Verdict.ALLOW
    assert codes(allowed.reasons) == ["evidence-unavailable"]


def test_missing_evidence_is_a_gate_bug() -> None:
    decision = evaluate(POLICY, rule(SBOM), facts())

    assert codes(decision.reasons) == ["evidence-incomplete"]


def test_child_of_allowed_index_inherits() -> None:
    decision = evaluate(POLICY, rule(SBOM), facts(inherited_from=CHILD_A))

    assert decision.verdict is Verdict.ALLOW


def test_signature_and_attestation_reasons_combined() -> None:
    combined = Rule(
        name="release",
        repositories=("team/**",),
        signatures=SignatureRequirement(authorities=(key("ci"),), index_policy=IndexPolicy.SELF),
        attestations=(SBOM,),
    )
    decision = evaluate(
        POLICY,
        combined,
        Facts(
            repository="team/app",
            digest=DIGEST,
            is_index=False,
            signatures=(AuthorityEvidence("ci", MISSING),),
            attestations=(AttestationEvidence("sbom", MISSING),),
            now=NOW,
        ),
    )

    assert codes(decision.reasons) == ["signature-missing", "attestation-missing"]


def signature_rule(count: int | None, index_policy: IndexPolicy = IndexPolicy.SELF) -> Rule:
    return Rule(
        name="signed",
        repositories=("team/**",),
        signatures=SignatureRequirement(
            authorities=(key("ci"), key("release")), index_policy=index_policy, count=count
        ),
    )


def test_signature_count() -> None:
    one = (AuthorityEvidence("ci", VERIFIED), AuthorityEvidence("release", MISSING))
    two = (AuthorityEvidence("ci", VERIFIED), AuthorityEvidence("release", VERIFIED))

    def decide(count: int | None, signatures: tuple[AuthorityEvidence, ...]) -> object:
        return evaluate(
            POLICY,
            signature_rule(count),
            Facts(repository="team/app", digest=DIGEST, is_index=False, signatures=signatures),
        )

    assert decide(None, one).verdict is Verdict.ALLOW  # type: ignore[attr-defined]
    denied = decide(2, one)
    assert denied.verdict is Verdict.DENY  # type: ignore[attr-defined]
    assert codes(denied.reasons) == ["signature-missing", "signature-count"]  # type: ignore[attr-defined]
    assert decide(2, two).verdict is Verdict.ALLOW  # type: ignore[attr-defined]


def test_unsigned_index_denial_names_signed_children() -> None:
    children = (
        (CHILD_A, (AuthorityEvidence("ci", VERIFIED),)),
        (CHILD_B, (AuthorityEvidence("ci", VERIFIED),)),
    )
    decision = evaluate(
        POLICY,
        signature_rule(None),
        Facts(
            repository="team/app",
            digest=DIGEST,
            is_index=True,
            signatures=(AuthorityEvidence("ci", MISSING), AuthorityEvidence("release", MISSING)),
            children=children,
        ),
    )

    assert decision.verdict is Verdict.DENY
    message = decision.message()
    assert f"index {DIGEST} is not signed itself, but 2 of 2 child manifests are signed" in message
    assert CHILD_A in message
    assert CHILD_B in message
    assert "indexPolicy: self-or-children" in decision.reasons[0].fix
