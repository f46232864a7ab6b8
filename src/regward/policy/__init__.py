"""The policy file and its evaluation: which images may pass the gate, and why not.

Pure: nothing here touches the network or a database. Reading the policy and key files at
load time is the only disk I/O.
"""

from __future__ import annotations

from regward.policy.attestations import (
    AttestationEvidence,
    AttestationReasonCode,
    AttestationRule,
    ProvenanceCondition,
    StatementFacts,
)
from regward.policy.errors import PatternError, PolicyError, PolicyProblem
from regward.policy.evaluate import (
    AuthorityEvidence,
    Decision,
    EvidenceStatus,
    Facts,
    Reason,
    ReasonCode,
    Verdict,
    evaluate,
)
from regward.policy.load import MAX_POLICY_BYTES, load_policy, parse_policy
from regward.policy.match import (
    glob_match,
    is_accessory_tag,
    is_immutable_tag,
    select_rule,
    specificity,
    tag_matches,
)
from regward.policy.model import (
    Authority,
    BlobAccess,
    DefaultAction,
    ImmutableTags,
    IndexPolicy,
    KeylessIdentity,
    Mode,
    OnError,
    Policy,
    Rule,
    SbomSource,
    SignatureRequirement,
    TlogMode,
)

__all__ = [
    "MAX_POLICY_BYTES",
    "AttestationEvidence",
    "AttestationReasonCode",
    "AttestationRule",
    "Authority",
    "AuthorityEvidence",
    "BlobAccess",
    "Decision",
    "DefaultAction",
    "EvidenceStatus",
    "Facts",
    "ImmutableTags",
    "IndexPolicy",
    "KeylessIdentity",
    "Mode",
    "OnError",
    "PatternError",
    "Policy",
    "PolicyError",
    "PolicyProblem",
    "ProvenanceCondition",
    "Reason",
    "ReasonCode",
    "Rule",
    "SbomSource",
    "SignatureRequirement",
    "StatementFacts",
    "TlogMode",
    "Verdict",
    "evaluate",
    "glob_match",
    "is_accessory_tag",
    "is_immutable_tag",
    "load_policy",
    "parse_policy",
    "select_rule",
    "specificity",
    "tag_matches",
]
