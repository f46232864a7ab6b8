"""Pydantic models of the policy file as written in YAML (camelCase keys).

These models only check shape and single values. Checks that need the whole document or the
disk (unique names, key files) happen in `regward.policy.load` while converting to the frozen
types of `regward.policy.model`. Every model forbids unknown keys so that a misspelt key fails
instead of being ignored, and runs in strict mode so that YAML's implicit types (`yes` as a
boolean, `1.0` as a float) are not coerced into strings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from regward.policy.errors import PatternError
from regward.policy.match import check_repository_pattern, check_tag_pattern

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# An OCI repository name (distribution spec), optionally after a registry host and port.
_REPOSITORY = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)

MAX_KEY_PEM_LENGTH = 64 * 1024
"""Maximum length of an inline PEM, far above the size of any public key PEM."""


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


Name = Annotated[str, AfterValidator(_check_name)]
RepositoryGlob = Annotated[str, AfterValidator(_check_repository_glob)]
TagPattern = Annotated[str, AfterValidator(_check_tag_pattern)]
Repository = Annotated[str, AfterValidator(_check_repository)]


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


class AuthorityWire(_WireModel):
    """One entry of `signatures.authorities`."""

    name: Name
    key: KeySourceWire
    signature_repository: Repository | None = Field(default=None, alias="signatureRepository")
    rekor_public_key: KeySourceWire | None = Field(default=None, alias="rekorPublicKey")
    tlog: Literal["optional", "required"] = "optional"


class SignaturesWire(_WireModel):
    """The `signatures` section of a rule."""

    index_policy: Literal["self", "self-or-children"] = Field(default="self", alias="indexPolicy")
    authorities: Annotated[list[AuthorityWire], Field(min_length=1)]


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


class PolicyWire(_WireModel):
    """The whole policy document."""

    default_action: Literal["deny", "allow"] = Field(default="deny", alias="defaultAction")
    blobs: Literal["referenced-only", "open"] = "referenced-only"
    rules: list[RuleWire] = Field(default_factory=list)
    admission: dict[str, Any] | None = None
    """Cluster admission settings, validated by `regward.admission.config`."""
