"""The contract between the admission endpoints and the gate that decides images.

The admission handlers never fetch manifests or signatures themselves. They ask an
`ImageDecider`, which the gate implements on top of its registry client, policy and decision
cache, so a cluster gets the same decision for a digest as a registry pull does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from regward.errors import RegwardError


@dataclass(frozen=True)
class ImageVerdict:
    """The gate's decision about one image reference."""

    reference: str
    """The reference as it was asked about, such as `registry.example.com/app:v1`."""

    digest: str | None
    """The manifest digest the tag resolved to and the decision is about, or None when the
    reference could not be resolved."""

    allowed: bool
    """Whether the image may run: True for an allow, and for a denial in `warn` or `audit`
    mode."""

    warn: bool
    """Whether the rule denied the image but runs in `warn` mode, so the client gets a warning."""

    reason: str
    """The reason for a denial or warning, naming the rule; empty for a plain allow."""

    timed_out: bool = False
    """Whether the evidence could not be fetched in time; `allowed` then carries the rule's
    choice for that case."""


@dataclass(frozen=True)
class AdmittedContainer:
    """One container of a workload that is being admitted, as deployment records store it."""

    container: str
    container_list: str
    """`containers`, `initContainers` or `ephemeralContainers`."""

    image: str
    """The image reference as the object spells it."""

    digest: str | None
    """The digest the admission decision was about, or the one the reference names; None when
    neither is known."""


class ImageDecider(Protocol):
    """Decides image references by policy; the gate implements it."""

    async def decide_reference(self, reference: str) -> ImageVerdict:
        """Resolve `reference` to a digest through the registry and evaluate its rule.

        Implementations return a verdict for every failure they can name (not found, upstream
        unavailable, no rule matches) and raise `RegwardError` only for faults of their own.
        """
        ...


class NamespaceLabelLookup(Protocol):
    """Reads the labels of a Kubernetes namespace, for namespace label selectors."""

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """Return the labels of `namespace`, or None when they cannot be read."""
        ...


class AdmissionError(RegwardError):
    """Base class of the errors raised by `regward.admission`."""


class MalformedReviewError(AdmissionError):
    """A request body is not a well-formed AdmissionReview or ProviderRequest."""


class AdmissionConfigError(AdmissionError):
    """The `admission` section of the configuration is invalid."""


class RecordsError(AdmissionError):
    """Deployment records could not be read or written."""
