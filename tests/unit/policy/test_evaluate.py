"""Tests of `evaluate`: every branch of the signature check, each mode and the messages."""

from __future__ import annotations

import pytest

from regward.policy import (
    Authority,
    AuthorityEvidence,
    BlobAccess,
    Decision,
    DefaultAction,
    EvidenceStatus,
    Facts,
    IndexPolicy,
    Mode,
    OnError,
    Policy,
    Rule,
    SignatureRequirement,
    Verdict,
    evaluate,
)

DIGEST = "sha256:" + "ab" * 32
CHILD_A = "sha256:" + "0a" * 32
CHILD_B = "sha256:" + "0b" * 32
REVISION = "f" * 64

VERIFIED = EvidenceStatus.VERIFIED
MISSING = EvidenceStatus.MISSING
INVALID = EvidenceStatus.INVALID
ERROR = EvidenceStatus.ERROR


def authority(name: str) -> Authority:
    return Authority(
        name=name,
        key_pem=b"-----BEGIN PUBLIC KEY-----\n",
        signature_repository=None,
        rekor_public_key_pem=None,
        tlog="optional",
    )


def signed_rule(
    *names: str,
    mode: Mode = Mode.ENFORCE,
    on_error: OnError = OnError.DENY,
    index_policy: IndexPolicy = IndexPolicy.SELF,
) -> Rule:
    return Rule(
        name="ci-signed",
        repositories=("test/**",),
        mode=mode,
        on_error=on_error,
        signatures=SignatureRequirement(
            authorities=tuple(authority(name) for name in names or ("ci",)),
            index_policy=index_policy,
        ),
    )


def make_policy(default_action: DefaultAction = DefaultAction.DENY) -> Policy:
    return Policy(
        default_action=default_action,
        blobs=BlobAccess.REFERENCED_ONLY,
        rules=(),
        revision=REVISION,
        source="<test>",
    )


def evidence(name: str, status: EvidenceStatus, *reasons: str) -> AuthorityEvidence:
    return AuthorityEvidence(authority=name, status=status, reasons=reasons)


def facts(
    *signatures: AuthorityEvidence,
    is_index: bool = False,
    children: tuple[tuple[str, tuple[AuthorityEvidence, ...]], ...] = (),
    inherited_from: str | None = None,
) -> Facts:
    return Facts(
        repository="test/app",
        digest=DIGEST,
        is_index=is_index,
        signatures=signatures,
        children=children,
        inherited_from=inherited_from,
    )


def decide(rule: Rule | None, item: Facts, policy: Policy | None = None) -> Decision:
    return evaluate(policy or make_policy(), rule, item)


def codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


# --- no rule --------------------------------------------------------------------------------


def test_no_rule_default_deny() -> None:
    decision = decide(None, facts())

    assert decision.verdict is Verdict.DENY
    assert decision.allowed is False
    assert decision.mode is None
    assert decision.rule is None
    assert codes(decision) == ["no-rule"]
    assert decision.reasons[0].message == (
        "no policy rule matches repository test/app and defaultAction is deny"
    )
    assert decision.message() == (
        f"policy denies test/app@{DIGEST}: no policy rule matches repository test/app and "
        "defaultAction is deny; fix: add a rule whose repositories match test/app"
    )


def test_no_rule_default_allow() -> None:
    decision = decide(None, facts(), make_policy(DefaultAction.ALLOW))

    assert decision.verdict is Verdict.ALLOW
    assert decision.allowed is True
    assert decision.reasons == ()
    assert decision.message() == f"defaultAction allows test/app@{DIGEST}"


def test_rule_without_signatures_allows() -> None:
    rule = Rule(name="open", repositories=("test/**",))

    decision = decide(rule, facts())

    assert decision.verdict is Verdict.ALLOW
    assert decision.rule == "open"
    assert decision.mode is Mode.ENFORCE
    assert decision.message() == f"rule 'open' allows test/app@{DIGEST}"


def test_decision_carries_identity() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", VERIFIED)))

    assert decision.repository == "test/app"
    assert decision.digest == DIGEST
    assert decision.policy_revision == REVISION


# --- signatures -----------------------------------------------------------------------------


def test_verified_signature_allows() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", VERIFIED)))

    assert decision.verdict is Verdict.ALLOW
    assert decision.allowed is True
    assert decision.reasons == ()


def test_any_one_authority_is_enough() -> None:
    rule = signed_rule("ci", "release")

    decision = decide(rule, facts(evidence("ci", MISSING), evidence("release", VERIFIED)))

    assert decision.verdict is Verdict.ALLOW


def test_authority_outside_rule_ignored() -> None:
    decision = decide(
        signed_rule("ci"), facts(evidence("other", VERIFIED), evidence("ci", MISSING))
    )

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["signature-missing"]


def test_missing_signature_denies() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", MISSING, "no signature found")))

    assert decision.verdict is Verdict.DENY
    assert decision.allowed is False
    assert codes(decision) == ["signature-missing"]
    assert decision.message() == (
        f"rule 'ci-signed' denies test/app@{DIGEST}: no signature verified by authority 'ci' "
        f"(no signature found); fix: sign {DIGEST} with the key of authority 'ci'"
    )


def test_missing_signature_default_detail() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", MISSING)))

    assert decision.reasons[0].message == (
        "no signature verified by authority 'ci' (no signature found)"
    )


def test_invalid_signature_denies() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", INVALID, "signature does not match key")))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["signature-invalid"]
    assert decision.reasons[0].message == (
        "no signature verified by authority 'ci' (invalid signature: signature does not match key)"
    )
    assert decision.reasons[0].fix.startswith(f"sign {DIGEST} again with the key of authority 'ci'")


def test_each_authority_listed() -> None:
    rule = signed_rule("ci", "release")

    decision = decide(rule, facts(evidence("ci", MISSING), evidence("release", INVALID, "bad")))

    assert codes(decision) == ["signature-missing", "signature-invalid"]
    message = decision.message()
    assert "authority 'ci' (no signature found); no signature verified by authority 'release'" in (
        message
    )
    assert f"fix: sign {DIGEST} with the key of authority 'ci' or sign {DIGEST} again" in message


def test_missing_and_error_differ() -> None:
    missing = decide(signed_rule(), facts(evidence("ci", MISSING)))
    failed = decide(signed_rule(), facts(evidence("ci", ERROR, "registry timed out")))

    assert codes(missing) == ["signature-missing"]
    assert codes(failed) == ["evidence-unavailable"]
    assert missing.reasons[0].message != failed.reasons[0].message
    assert failed.reasons[0].message == (
        "signatures for authority 'ci' could not be fetched (registry timed out)"
    )


def test_error_with_on_error_deny() -> None:
    rule = signed_rule("ci", "release", on_error=OnError.DENY)

    decision = decide(rule, facts(evidence("ci", ERROR), evidence("release", ERROR)))

    assert decision.verdict is Verdict.DENY
    assert decision.allowed is False
    assert codes(decision) == ["evidence-unavailable", "evidence-unavailable"]
    assert "could not be fetched (fetch failed)" in decision.message()


def test_error_with_on_error_allow() -> None:
    rule = signed_rule("ci", "release", on_error=OnError.ALLOW)

    decision = decide(rule, facts(evidence("ci", ERROR, "timeout"), evidence("release", ERROR)))

    assert decision.verdict is Verdict.ALLOW
    assert decision.allowed is True
    assert codes(decision) == ["evidence-unavailable", "evidence-unavailable"]
    assert decision.message().startswith(
        f"rule 'ci-signed' allows test/app@{DIGEST}: signatures for authority 'ci' could not be "
        "fetched (timeout)"
    )


def test_error_plus_missing_ignores_on_error() -> None:
    rule = signed_rule("ci", "release", on_error=OnError.ALLOW)

    decision = decide(rule, facts(evidence("ci", ERROR), evidence("release", MISSING)))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["evidence-unavailable", "signature-missing"]


def test_error_plus_invalid_ignores_on_error() -> None:
    rule = signed_rule("ci", "release", on_error=OnError.ALLOW)

    decision = decide(rule, facts(evidence("ci", INVALID), evidence("release", ERROR)))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["signature-invalid", "evidence-unavailable"]


def test_absent_evidence_denies_despite_on_error_allow() -> None:
    rule = signed_rule("ci", "release", on_error=OnError.ALLOW)

    decision = decide(rule, facts(evidence("ci", ERROR)))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["evidence-unavailable", "evidence-incomplete"]
    assert "no signature evidence was gathered for authority 'release'" in decision.message()


def test_no_evidence_at_all_denies() -> None:
    decision = decide(signed_rule(), facts())

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["evidence-incomplete"]


def test_duplicate_evidence_merged() -> None:
    verified_later = facts(evidence("ci", MISSING, "no tag"), evidence("ci", VERIFIED))
    invalid_and_error = facts(
        evidence("ci", ERROR, "referrers failed"), evidence("ci", INVALID, "bad")
    )

    assert decide(signed_rule(), verified_later).verdict is Verdict.ALLOW
    merged = decide(signed_rule(on_error=OnError.ALLOW), invalid_and_error)
    assert merged.verdict is Verdict.DENY
    assert codes(merged) == ["signature-invalid"]
    assert "(invalid signature: referrers failed, bad)" in merged.message()


def test_error_and_missing_merge_to_error() -> None:
    item = facts(evidence("ci", MISSING, "no .sig tag"), evidence("ci", ERROR, "referrers: 500"))

    decision = decide(signed_rule(on_error=OnError.ALLOW), item)

    assert decision.verdict is Verdict.ALLOW
    assert codes(decision) == ["evidence-unavailable"]


def test_rule_without_authorities_denies() -> None:
    rule = Rule(
        name="empty",
        repositories=("test/**",),
        signatures=SignatureRequirement(authorities=(), index_policy=IndexPolicy.SELF),
    )

    decision = decide(rule, facts(evidence("ci", VERIFIED)))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["no-authorities"]


# --- indexes and children -------------------------------------------------------------------


def test_inherited_from_signed_index_allows() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", MISSING), inherited_from=CHILD_A))

    assert decision.verdict is Verdict.ALLOW
    assert decision.reasons == ()


def test_index_self_or_children_all_signed() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)
    children = ((CHILD_A, (evidence("ci", VERIFIED),)), (CHILD_B, (evidence("ci", VERIFIED),)))

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True, children=children))

    assert decision.verdict is Verdict.ALLOW


def test_index_self_or_children_one_unsigned() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)
    children = ((CHILD_A, (evidence("ci", VERIFIED),)), (CHILD_B, (evidence("ci", MISSING),)))

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True, children=children))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["signature-missing", "child-signature-missing"]
    assert decision.reasons[1].message == (
        f"1 of 2 child manifests of index {DIGEST} have no signature verified by authority "
        f"'ci': {CHILD_B}"
    )


def test_index_children_signed_by_other_key() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)
    children = ((CHILD_A, (evidence("stranger", VERIFIED),)),)

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True, children=children))

    assert decision.verdict is Verdict.DENY
    assert CHILD_A in decision.reasons[1].message


def test_index_without_children_denies() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True))

    assert decision.verdict is Verdict.DENY
    assert decision.reasons[1].message == (
        f"index {DIGEST} lists no child manifests with signature evidence"
    )


def test_many_unsigned_children_abbreviated() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)
    children = tuple((f"sha256:{index:064x}", (evidence("ci", MISSING),)) for index in range(8))

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True, children=children))

    message = decision.reasons[1].message
    assert message.startswith("8 of 8 child manifests")
    assert f"sha256:{4:064x} and 3 more" in message
    assert f"sha256:{5:064x}" not in message


def test_index_policy_self_ignores_children() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF)
    children = ((CHILD_A, (evidence("ci", VERIFIED),)),)

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=True, children=children))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["signature-missing"]


def test_children_ignored_for_non_index() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN)
    children = ((CHILD_A, (evidence("ci", VERIFIED),)),)

    decision = decide(rule, facts(evidence("ci", MISSING), is_index=False, children=children))

    assert decision.verdict is Verdict.DENY


def test_index_own_errors_follow_on_error() -> None:
    rule = signed_rule(index_policy=IndexPolicy.SELF_OR_CHILDREN, on_error=OnError.DENY)
    children = ((CHILD_A, (evidence("ci", MISSING),)),)

    decision = decide(rule, facts(evidence("ci", ERROR), is_index=True, children=children))

    assert decision.verdict is Verdict.DENY
    assert codes(decision) == ["evidence-unavailable", "child-signature-missing"]


# --- modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "allowed"), [(Mode.ENFORCE, False), (Mode.WARN, True), (Mode.AUDIT, True)]
)
def test_mode_decides_enforcement(mode: Mode, allowed: bool) -> None:
    decision = decide(signed_rule(mode=mode), facts(evidence("ci", MISSING)))

    assert decision.verdict is Verdict.DENY
    assert decision.mode is mode
    assert decision.allowed is allowed


@pytest.mark.parametrize("mode", [Mode.WARN, Mode.AUDIT])
def test_unenforced_message(mode: Mode) -> None:
    decision = decide(signed_rule(mode=mode), facts(evidence("ci", MISSING)))

    message = decision.message()
    assert message.startswith(f"rule 'ci-signed' would deny test/app@{DIGEST}: ")
    assert message.endswith(f" (mode {mode}, so the request was allowed)")


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.WARN, Mode.AUDIT])
def test_mode_does_not_change_allow(mode: Mode) -> None:
    decision = decide(signed_rule(mode=mode), facts(evidence("ci", VERIFIED)))

    assert decision.verdict is Verdict.ALLOW
    assert decision.allowed is True


# --- messages and purity --------------------------------------------------------------------


def test_message_is_one_line() -> None:
    item = facts(evidence("ci", INVALID, "line one\nline two\r\n\x1b[31mred"))

    message = decide(signed_rule(), item).message()

    assert "\n" not in message
    assert "\r" not in message
    assert "\x1b" not in message
    assert "line one line two" in message


def test_long_detail_truncated() -> None:
    decision = decide(signed_rule(), facts(evidence("ci", INVALID, "x" * 1000)))

    assert "x" * 199 + "…" in decision.reasons[0].message
    assert "x" * 200 not in decision.reasons[0].message


def test_evaluate_is_deterministic() -> None:
    rule = signed_rule("ci", "release")
    item = facts(evidence("release", INVALID, "bad"), evidence("ci", MISSING))

    first = decide(rule, item)
    second = decide(rule, item)

    assert first == second
    # Reasons follow the order of the authorities in the rule, not of the evidence.
    assert codes(first) == ["signature-missing", "signature-invalid"]
