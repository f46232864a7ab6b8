"""The `admission` section of the configuration: cluster perimeter rules, budget and failure mode.

The YAML form, with every key optional:

    admission:
      allowedRegistries:            # images from any other registry are denied
        - registry.example.com      # a whole registry (host[:port])
        - ghcr.io/example-org       # or a repository prefix, matched on whole path segments
      requireDigest:                # namespaces whose workloads must name images by digest
        - namespaceSelector:
            matchLabels: {environment: production}
      failureMode: deny             # deny | allow: images not decided within the budget
      budgetSeconds: 8              # time for one review, below the webhook's timeoutSeconds
      namespaceLabelSource: config  # config | kubernetes: where namespace labels come from
      namespaceLabels:              # labels per namespace, for namespaceLabelSource: config
        payments: {environment: production}
      maxImages: 256                # distinct images one review may name

An empty `allowedRegistries` list, or none, allows every registry. Label selectors follow
Kubernetes `metav1.LabelSelector`: every `matchLabels` pair and every `matchExpressions` entry
must hold, and an empty selector matches every namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regward.admission.interface import AdmissionConfigError
from regward.oci.errors import InvalidReferenceError
from regward.oci.reference import Reference, normalize_registry, validate_repository

DEFAULT_BUDGET_SECONDS = 8.0
"""Default time for one review: 2 s below the webhook timeout of 10 s that the manifests set."""

MAX_BUDGET_SECONDS = 29.0
"""Kubernetes caps a webhook's `timeoutSeconds` at 30, and the review must finish before it."""

DEFAULT_MAX_IMAGES = 256
"""Default maximum number of distinct image references in one review."""

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label Kubernetes (1.21 and later) sets on every namespace to its own name."""


class FailureMode(StrEnum):
    """The verdict for an image whose decision is not ready within the budget."""

    DENY = "deny"
    ALLOW = "allow"


class NamespaceLabelSource(StrEnum):
    """The source of the labels of a request's namespace."""

    CONFIG = "config"
    """The `namespaceLabels` map of the configuration, plus `kubernetes.io/metadata.name`."""

    KUBERNETES = "kubernetes"
    """The Kubernetes API, with the service account token of the pod regward runs in."""


class SelectorOperator(StrEnum):
    """Operators of a label selector's `matchExpressions`."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class LabelRequirement:
    """One entry of `matchExpressions`."""

    key: str
    operator: SelectorOperator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether `labels` satisfy this requirement."""
        if self.operator is SelectorOperator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is SelectorOperator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector over namespace labels."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether `labels` satisfy every pair and every expression."""
        if any(labels.get(key) != value for key, value in self.match_labels):
            return False
        return all(requirement.matches(labels) for requirement in self.match_expressions)


@dataclass(frozen=True)
class AllowedRegistry:
    """One `allowedRegistries` entry: a registry, optionally narrowed to a repository prefix."""

    registry: str
    """Canonical `host[:port]`, with Docker Hub's aliases folded into `docker.io`."""

    repository_prefix: str = ""
    """Repository path prefix, matched on whole segments; empty for the whole registry."""

    def matches(self, reference: Reference) -> bool:
        """Tell whether `reference` lies inside this registry and prefix."""
        if reference.registry != self.registry:
            return False
        if not self.repository_prefix:
            return True
        repository = reference.repository
        return repository == self.repository_prefix or repository.startswith(
            self.repository_prefix + "/"
        )

    def __str__(self) -> str:
        if self.repository_prefix:
            return f"{self.registry}/{self.repository_prefix}"
        return self.registry


@dataclass(frozen=True)
class AdmissionSettings:
    """The validated `admission` section."""

    allowed_registries: tuple[AllowedRegistry, ...] = ()
    """Registries images may come from; empty allows every registry."""

    require_digest: tuple[LabelSelector, ...] = ()
    """Namespaces matching any of these selectors must name images by digest."""

    failure_mode: FailureMode = FailureMode.DENY
    """Verdict for an image whose decision is not ready within the budget."""

    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    """Time for one review, in seconds."""

    namespace_label_source: NamespaceLabelSource = NamespaceLabelSource.CONFIG
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)
    """Labels per namespace name, used with `NamespaceLabelSource.CONFIG`."""

    max_images: int = DEFAULT_MAX_IMAGES
    """Maximum number of distinct image references one review may name."""

    def registry_allowed(self, reference: Reference) -> bool:
        """Tell whether `reference` comes from an allowed registry."""
        if not self.allowed_registries:
            return True
        return any(entry.matches(reference) for entry in self.allowed_registries)

    def digest_required(self, labels: Mapping[str, str] | None) -> bool:
        """Tell whether a namespace with `labels` must name images by digest.

        Unknown labels (None) require a digest whenever any selector is configured, because
        the stricter result is the safe one when the namespace cannot be read.
        """
        if not self.require_digest:
            return False
        if labels is None:
            return True
        return any(selector.matches(labels) for selector in self.require_digest)


# -- wire format ----------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _RequirementWire(_Wire):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class _SelectorWire(_Wire):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[_RequirementWire] = Field(
        default_factory=list, alias="matchExpressions"
    )


class _RequireDigestWire(_Wire):
    namespace_selector: _SelectorWire = Field(alias="namespaceSelector")


class _AdmissionWire(_Wire):
    allowed_registries: list[str] = Field(default_factory=list, alias="allowedRegistries")
    require_digest: list[_RequireDigestWire] = Field(default_factory=list, alias="requireDigest")
    failure_mode: Literal["deny", "allow"] = Field(default="deny", alias="failureMode")
    budget_seconds: float = Field(
        default=DEFAULT_BUDGET_SECONDS, gt=0, le=MAX_BUDGET_SECONDS, alias="budgetSeconds"
    )
    namespace_label_source: Literal["config", "kubernetes"] = Field(
        default="config", alias="namespaceLabelSource"
    )
    namespace_labels: dict[str, dict[str, str]] = Field(
        default_factory=dict, alias="namespaceLabels"
    )
    max_images: int = Field(default=DEFAULT_MAX_IMAGES, ge=1, le=4096, alias="maxImages")


def _location(loc: tuple[int | str, ...]) -> str:
    path = "admission"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _parse_allowed_registry(index: int, text: str) -> AllowedRegistry:
    host, _, prefix = text.strip().partition("/")
    try:
        registry = normalize_registry(host)
        if prefix:
            validate_repository(prefix)
    except InvalidReferenceError as exc:
        raise AdmissionConfigError(
            f"admission.allowedRegistries[{index}]: {exc}; expected host[:port] or "
            "host[:port]/repository-prefix"
        ) from exc
    return AllowedRegistry(registry, prefix)


def _selector(wire: _SelectorWire, where: str) -> LabelSelector:
    requirements: list[LabelRequirement] = []
    for index, expression in enumerate(wire.match_expressions):
        operator = SelectorOperator(expression.operator)
        needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not expression.values:
            raise AdmissionConfigError(
                f"{where}.matchExpressions[{index}]: operator {operator} needs a non-empty "
                "values list"
            )
        if not needs_values and expression.values:
            raise AdmissionConfigError(
                f"{where}.matchExpressions[{index}]: operator {operator} takes no values, "
                f"got {expression.values!r}"
            )
        requirements.append(
            LabelRequirement(expression.key, operator, frozenset(expression.values))
        )
    return LabelSelector(tuple(sorted(wire.match_labels.items())), tuple(requirements))


def parse_admission_settings(mapping: Mapping[str, Any] | None) -> AdmissionSettings:
    """Validate the `admission` section of a policy or config file.

    Args:
        mapping: the section as loaded from YAML; None or an empty mapping gives the defaults.

    Raises:
        AdmissionConfigError: names the key path (such as `admission.requireDigest[0]`) and
            what was expected there.

    Returns:
        The validated settings.
    """
    if mapping is None:
        return AdmissionSettings()
    if not isinstance(mapping, Mapping):
        raise AdmissionConfigError(f"admission: expected a mapping, got {type(mapping).__name__}")
    try:
        wire = _AdmissionWire.model_validate(dict(mapping))
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(tuple(error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise AdmissionConfigError(f"invalid admission settings: {problems}") from exc

    allowed = tuple(
        _parse_allowed_registry(index, text) for index, text in enumerate(wire.allowed_registries)
    )
    require_digest = tuple(
        _selector(entry.namespace_selector, f"admission.requireDigest[{index}].namespaceSelector")
        for index, entry in enumerate(wire.require_digest)
    )
    return AdmissionSettings(
        allowed_registries=allowed,
        require_digest=require_digest,
        failure_mode=FailureMode(wire.failure_mode),
        budget_seconds=wire.budget_seconds,
        namespace_label_source=NamespaceLabelSource(wire.namespace_label_source),
        namespace_labels={name: dict(labels) for name, labels in wire.namespace_labels.items()},
        max_images=wire.max_images,
    )
