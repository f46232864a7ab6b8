"""Pydantic models of the policy file as written in YAML (camelCase keys).

These models only check shape and single values. Checks that need the whole document or the
disk (unique names, key files) happen in `regward.policy.load` while converting to the frozen
types of `regward.policy.model`. Every model forbids unknown keys so that a misspelt key fails
instead of being ignored, and runs in strict mode so that YAML's implicit types (`yes` as a
boolean, `1.0` as a float) are not coerced into strings.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from regward.policy.errors import PatternError
from regward.policy.match import check_repository_pattern, check_tag_pattern
from regward.policy.vulnerabilities import VulnerabilitiesWire

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# An OCI repository name (distribution spec), optionally after a registry host and port.
_REPOSITORY = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)

MAX_KEY_PEM_LENGTH = 64 * 1024
"""Maximum length of an inline PEM, far above the size of any public key PEM."""

MAX_PATTERN_LENGTH = 1024
"""Maximum length of a keyless issuer or subject, exact or pattern."""

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _check_name(value: str) -> str:
    if _NAME.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_name",
            "expected a name of 1 to 63 letters, digits, '.', '_' or '-' starting with a letter "
            "or digit, got {value}",
            {"value": repr(value)},
        )
    return value


def _check_repository_glob(value: str) -> str:
    try:
        check_repository_pattern(value)
    except PatternError as exc:
        raise PydanticCustomError(
            "invalid_glob",
            "invalid repository glob {value}: {reason}",
            {"value": repr(value), "reason": exc.reason},
        ) from exc
    return value


def _check_tag_pattern(value: str) -> str:
    try:
        check_tag_pattern(value)
    except PatternError as exc:
        raise PydanticCustomError(
            "invalid_tag_pattern",
            "invalid tag pattern {value}: {reason}",
            {"value": repr(value), "reason": exc.reason},
        ) from exc
    return value


def _check_repository(value: str) -> str:
    if len(value) > 255 or _REPOSITORY.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_repository",
            "expected a repository name such as 'team/app-signatures' (lower-case path "
            "segments, optionally after a registry host), got {value}",
            {"value": repr(value)},
        )
    return value


def _check_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "invalid_regexp",
            "invalid regular expression {value}: {reason}",
            {"value": repr(value), "reason": str(exc)},
        ) from exc
    return value


def parse_duration(value: str) -> timedelta:
    """Parse a duration such as `24h` or `7d12h`; raises PydanticCustomError when invalid."""
    match = _DURATION.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise PydanticCustomError(
            "invalid_duration",
            "expected a duration such as '24h', '90m' or '7d12h' (units d, h, m, s), got {value}",
            {"value": repr(value)},
        )
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise PydanticCustomError(
            "invalid_duration",
            "expected a duration longer than zero, got {value}",
            {"value": repr(value)},
        )
    return duration


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Name = Annotated[str, AfterValidator(_check_name)]
RepositoryGlob = Annotated[str, AfterValidator(_check_repository_glob)]
TagPattern = Annotated[str, AfterValidator(_check_tag_pattern)]
Repository = Annotated[str, AfterValidator(_check_repository)]
Pattern = Annotated[
    str, Field(min_length=1, max_length=MAX_PATTERN_LENGTH), AfterValidator(_check_pattern)
]
Duration = Annotated[str, Field(max_length=32), AfterValidator(_check_duration)]


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class KeySourceWire(_WireModel):
    """A PEM public key given either as a file path or inline."""

    path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    pem: Annotated[str, Field(min_length=1, max_length=MAX_KEY_PEM_LENGTH)] | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> KeySourceWire:
        if self.path is not None and self.pem is not None:
            raise PydanticCustomError(
                "key_source", "expected exactly one of 'path' or 'pem', got both"
            )
        if self.path is None and self.pem is None:
            raise PydanticCustomError(
                "key_source", "expected exactly one of 'path' or 'pem', got neither"
            )
        return self


class TrustedRootWire(_WireModel):
    """The trusted root of a keyless authority: a trusted_root.json file or a shipped one."""

    path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    name: Literal["public-good", "staging"] | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TrustedRootWire:
        if (self.path is None) == (self.name is None):
            raise PydanticCustomError(
                "trusted_root_source",
                "expected exactly one of 'path' (a trusted_root.json file) or 'name' "
                "(public-good or staging)",
            )
        return self


class KeylessWire(_WireModel):
    """The `keyless` form of an authority: a Fulcio identity."""

    issuer: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_LENGTH)] | None = None
    issuer_regexp: Pattern | None = Field(default=None, alias="issuerRegExp")
    subject: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_LENGTH)] | None = None
    subject_regexp: Pattern | None = Field(default=None, alias="subjectRegExp")
    trusted_root: TrustedRootWire | None = Field(default=None, alias="trustedRoot")
    insecure_ignore_sct: bool = Field(default=False, alias="insecureIgnoreSCT")

    @model_validator(mode="after")
    def _one_of_each_pair(self) -> KeylessWire:
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise PydanticCustomError(
                "keyless_identity", "expected exactly one of 'issuer' or 'issuerRegExp'"
            )
        if (self.subject is None) == (self.subject_regexp is None):
            raise PydanticCustomError(
                "keyless_identity", "expected exactly one of 'subject' or 'subjectRegExp'"
            )
        return self


class AuthorityWire(_WireModel):
    """One entry of `signatures.authorities` or of an attestation's `authorities`."""

    name: Name
    key: KeySourceWire | None = None
    keyless: KeylessWire | None = None
    signature_repository: Repository | None = Field(default=None, alias="signatureRepository")
    rekor_public_key: KeySourceWire | None = Field(default=None, alias="rekorPublicKey")
    tlog: Literal["optional", "required"] = "optional"

    @model_validator(mode="before")
    @classmethod
    def _key_or_keyless_present(cls, data: Any) -> Any:
        # Reported as a missing `key`, the usual form, so the message names a key path.
        if isinstance(data, dict) and "key" not in data and "keyless" not in data:
            raise ValidationError.from_exception_data(
                cls.__name__, [InitErrorDetails(type="missing", loc=("key",), input=data)]
            )
        return data

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> AuthorityWire:
        if (self.key is None) == (self.keyless is None):
            raise PydanticCustomError(
                "authority_source", "expected exactly one of 'key' or 'keyless', got both"
            )
        if self.keyless is not None and (
            self.rekor_public_key is not None or "tlog" in self.model_fields_set
        ):
            raise PydanticCustomError(
                "authority_source",
                "'rekorPublicKey' and 'tlog' apply to 'key' authorities only; a keyless "
                "authority always requires a Rekor entry from its trusted root",
            )
        return self


class SignaturesWire(_WireModel):
    """The `signatures` section of a rule."""

    index_policy: Literal["self", "self-or-children"] = Field(default="self", alias="indexPolicy")
    authorities: Annotated[list[AuthorityWire], Field(min_length=1)]
    count: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _count_fits(self) -> SignaturesWire:
        if self.count is not None and self.count > len(self.authorities):
            raise PydanticCustomError(
                "attestation_condition",
                "count {count} is larger than the number of authorities ({number})",
                {"count": self.count, "number": len(self.authorities)},
            )
        return self


class ProvenanceWire(_WireModel):
    """The `provenance` conditions of an attestation requirement."""

    builder_id: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, alias="builderId"
    )
    source_repository: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, alias="sourceRepository"
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> ProvenanceWire:
        if self.builder_id is None and self.source_repository is None:
            raise PydanticCustomError(
                "attestation_condition", "expected 'builderId', 'sourceRepository' or both"
            )
        return self


class AttestationWire(_WireModel):
    """One entry of a rule's `attestations`."""

    name: Name
    predicate_type: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        alias="predicateType"
    )
    authorities: list[AuthorityWire] = Field(default_factory=list)
    count: Annotated[int, Field(ge=1)] | None = None
    allow_unsigned: bool = Field(default=False, alias="allowUnsigned")
    provenance: ProvenanceWire | None = None
    max_age: Duration | None = Field(default=None, alias="maxAge")

    @model_validator(mode="after")
    def _satisfiable(self) -> AttestationWire:
        if not self.authorities and not self.allow_unsigned:
            raise PydanticCustomError(
                "attestation_condition",
                "expected at least one authority, or 'allowUnsigned: true' to accept unsigned "
                "BuildKit statements",
            )
        if self.count is not None and self.count > len(self.authorities):
            raise PydanticCustomError(
                "attestation_condition",
                "count {count} is larger than the number of authorities ({number})",
                {"count": self.count, "number": len(self.authorities)},
            )
        return self


class ImmutableTagsWire(_WireModel):
    """The `immutableTags` section of a rule."""

    patterns: Annotated[list[TagPattern], Field(min_length=1)]
    exclude: list[TagPattern] = Field(default_factory=list)


class RuleWire(_WireModel):
    """One entry of `rules`."""

    name: Name
    repositories: Annotated[list[RepositoryGlob], Field(min_length=1)]
    mode: Literal["enforce", "warn", "audit"] = "enforce"
    on_error: Literal["deny", "allow"] = Field(default="deny", alias="onError")
    signatures: SignaturesWire | None = None
    immutable_tags: ImmutableTagsWire | None = Field(default=None, alias="immutableTags")
    attestations: list[AttestationWire] | None = None
    sbom_source: Literal["catalog", "attested"] = Field(default="catalog", alias="sbomSource")
    vulnerabilities: VulnerabilitiesWire | None = None


class PolicyWire(_WireModel):
    """The whole policy document."""

    default_action: Literal["deny", "allow"] = Field(default="deny", alias="defaultAction")
    blobs: Literal["referenced-only", "open"] = "referenced-only"
    rules: list[RuleWire] = Field(default_factory=list)
    admission: dict[str, Any] | None = None
    """Cluster admission settings, validated by `regward.admission.config`."""
