"""The policy model: frozen value types that `regward.policy.load` builds from a policy file.

Everything here is already validated: key PEMs parse, globs compile, names are unique. The
wire format (YAML keys in camelCase) lives in `regward.policy._wire`, so code that consumes
a policy works with these types only, never with raw YAML. A new rule section is a new
optional field on `Rule` with a default of None, so existing constructors keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regward.policy.attestations import AttestationRule
    from regward.policy.vulnerabilities import VulnerabilityRequirement
    from regward.signatures.trust import TrustRoot


class Mode(StrEnum):
    """Enforcement of a rule's DENY verdict by the gate."""

    ENFORCE = "enforce"
    """Reject the request."""

    WARN = "warn"
    """Serve the request and return the denial as a warning to the client."""

    AUDIT = "audit"
    """Serve the request and only record the denial."""


class DefaultAction(StrEnum):
    """Verdict for repositories that no rule matches."""

    ALLOW = "allow"
    DENY = "deny"


class BlobAccess(StrEnum):
    """Set of blob GETs that the gate serves."""

    REFERENCED_ONLY = "referenced-only"
    """Only blobs that belong to an allowed manifest of the same repository."""

    OPEN = "open"
    """Every blob; content addressing alone protects the data."""


class OnError(StrEnum):
    """Verdict when the evidence a rule needs could not be fetched."""

    DENY = "deny"
    ALLOW = "allow"


class IndexPolicy(StrEnum):
    """Condition under which an image index satisfies a signature requirement."""

    SELF = "self"
    """The index digest itself must carry a verified signature."""

    SELF_OR_CHILDREN = "self-or-children"
    """The index passes if it is signed, or if every child manifest it lists is signed."""


class TlogMode(StrEnum):
    """Whether a signature must come with a transparency log (Rekor) entry."""

    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Authority:
    """A public key whose signatures satisfy a rule."""

    name: str
    """Name unique within its rule, used in reasons and audit records."""

    key_pem: bytes
    """The public key as a SubjectPublicKeyInfo PEM, re-encoded from what the file gave."""

    signature_repository: str | None
    """Repository that contains the signatures, when it is not the image's own repository."""

    rekor_public_key_pem: bytes | None
    """Public key of the Rekor log whose entries are trusted, as SubjectPublicKeyInfo PEM."""

    tlog: str
    """A `TlogMode` value: "required" means a signature without a log entry does not verify."""


@dataclass(frozen=True)
class KeylessIdentity:
    """A Fulcio identity whose keyless signatures satisfy a rule (a `keyless` authority).

    Regular expressions match the whole value, which is stricter than cosign's unanchored
    `--certificate-identity-regexp`.
    """

    name: str
    """Name unique within its rule, used in reasons and audit records."""

    issuer: str | None
    """Exact OIDC issuer; exactly one of `issuer` and `issuer_regexp` is set."""

    issuer_regexp: str | None
    """Pattern the whole OIDC issuer must match."""

    subject: str | None
    """Exact certificate subject; exactly one of `subject` and `subject_regexp` is set."""

    subject_regexp: str | None
    """Pattern one whole subject alternative name must match."""

    trusted_root: TrustRoot
    """The Sigstore trust root: public-good unless the policy names another."""

    signature_repository: str | None = None
    """Repository that contains the signatures, when it is not the image's own repository."""

    ignore_sct: bool = False
    """`insecureIgnoreSCT`: accept certificates without a verified SCT."""


@dataclass(frozen=True)
class SignatureRequirement:
    """The `signatures` section of a rule: `count` authorities (default one) must verify."""

    authorities: tuple[Authority, ...]
    index_policy: IndexPolicy
    keyless: tuple[KeylessIdentity, ...] = ()
    """Keyless authorities, next to the key authorities in `authorities`."""

    count: int | None = None
    """How many distinct authorities must verify; None means any one."""

    @property
    def authority_names(self) -> tuple[str, ...]:
        """Names of every authority, key ones first."""
        keys = tuple(item.name for item in self.authorities)
        return keys + tuple(item.name for item in self.keyless)


class SbomSource(StrEnum):
    """Source of an image's SBOM for the gate."""

    CATALOG = "catalog"
    """regward's own cataloging of the image layers."""

    ATTESTED = "attested"
    """A verified SBOM attestation of the image, when one exists."""


@dataclass(frozen=True)
class ImmutableTags:
    """The `immutableTags` section of a rule: tags that may not move once pushed."""

    patterns: tuple[str, ...]
    """Tag patterns with `*` and `?` wildcards; a tag matching one of them is immutable."""

    exclude: tuple[str, ...]
    """Tag patterns that stay mutable even when a pattern in `patterns` matches."""


@dataclass(frozen=True)
class Rule:
    """One policy rule: the repositories it covers and the requirements it sets."""

    name: str
    repositories: tuple[str, ...]
    """Repository globs; see `regward.policy.match` for the syntax and for precedence."""

    mode: Mode = Mode.ENFORCE
    on_error: OnError = OnError.DENY
    signatures: SignatureRequirement | None = None
    """Signature requirement, or None when the rule does not require signatures."""

    immutable_tags: ImmutableTags | None = None
    """Tag immutability, or None when every tag of the covered repositories may move."""

    vulnerabilities: VulnerabilityRequirement | None = None
    """Vulnerability limits, or None when the rule does not scan images."""

    attestations: tuple[AttestationRule, ...] = ()
    """Attestations the image must carry; empty when the rule requires none."""

    sbom_source: SbomSource = SbomSource.CATALOG
    """Source of the image's SBOM (`sbomSource`)."""


@dataclass(frozen=True)
class Policy:
    """A loaded policy file."""

    default_action: DefaultAction
    blobs: BlobAccess
    rules: tuple[Rule, ...]
    revision: str
    """SHA-256 hex digest of the policy file bytes followed by the bytes of every distinct key
    file it loaded, in order of first reference. Editing the policy or rotating a key file
    changes the revision."""

    source: str
    """Path of the policy file, or `<string>` for text parsed directly."""

    admission: Mapping[str, Any] | None = None
    """The `admission` section as written, already checked by `regward.admission.config`."""
