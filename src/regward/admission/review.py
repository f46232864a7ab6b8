"""The validating and mutating admission webhooks: `admission.k8s.io/v1` AdmissionReview in, out.

`validate` checks every image of a Pod or of the pod template of a workload: perimeter rules
first, then the gate's decision for each reference, all within the review's budget. It responds
with the request's `uid`. A denial names each failing image with its reason, and images that a
`warn` rule denied come back as `warnings`. Admitted workloads are recorded as deployments,
except for dry-run requests. DELETE requests end the workload's records.

`mutate` rewrites each allowed tag reference to `name@sha256:…` of the digest that was decided,
so the kubelet pulls exactly the checked manifest even if the tag moves later. It never denies;
that is the validating webhook's job.

A body that is not a well-formed AdmissionReview gets HTTP 400 with a Kubernetes `Status`
naming the problem.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regward.admission.checks import ImageOutcome, decide_references
from regward.admission.config import AdmissionSettings
from regward.admission.images import PodImage, extract_images, is_supported
from regward.admission.interface import (
    AdmittedContainer,
    ImageDecider,
    MalformedReviewError,
    NamespaceLabelLookup,
    RecordsError,
)
from regward.admission.namespaces import StaticNamespaceLabels, labels_within
from regward.oci.digest import parse_digest
from regward.oci.errors import InvalidDigestError

if TYPE_CHECKING:
    from regward.admission.records import DeploymentRecorder

logger = logging.getLogger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"

MAX_REVIEW_BYTES = 8 * 1024 * 1024
"""Maximum AdmissionReview body. Objects are limited to about 1.5 MiB by etcd's default
request size, and an UPDATE review carries two of them."""

MAX_WARNING_CHARS = 256
"""Kubernetes may truncate longer warnings, so regward shortens them itself."""

MAX_WARNINGS = 32
"""Warnings beyond this count are summed up in one last warning."""

# -- wire format ----------------------------------------------------------------------------


class _GroupVersionKind(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    group: str = ""
    version: str = ""
    kind: str = Field(min_length=1)


class AdmissionRequest(BaseModel):
    """The `request` of an AdmissionReview, with the fields regward reads."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    uid: str = Field(min_length=1, max_length=128)
    kind: _GroupVersionKind
    sub_resource: str | None = Field(default=None, alias="subResource")
    name: str | None = None
    namespace: str | None = None
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool | None = Field(default=None, alias="dryRun")
    namespace_object: dict[str, Any] | None = Field(default=None, alias="namespaceObject")
    """Not sent by the API server to webhooks; read when a caller adds it."""


class AdmissionReview(BaseModel):
    """An `admission.k8s.io/v1` AdmissionReview request."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


@dataclass(frozen=True)
class AdmissionAnswer:
    """The `response` of an AdmissionReview, before serialisation."""

    uid: str
    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()
    patch: bytes | None = None
    """A JSONPatch document, or None when nothing changes."""

    digests: Mapping[str, str] = field(default_factory=dict, hash=False)
    """The digest decided for each image reference, for deployment records; not sent."""

    def to_bytes(self) -> bytes:
        """Serialise the response as an AdmissionReview body."""
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": self.message}
        if self.warnings:
            response["warnings"] = list(self.warnings)
        if self.patch is not None:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(self.patch).decode("ascii")
        review = {
            "apiVersion": ADMISSION_API_VERSION,
            "kind": "AdmissionReview",
            "response": response,
        }
        return json.dumps(review, separators=(",", ":")).encode()


def parse_review(body: bytes) -> AdmissionReview:
    """Parse an AdmissionReview request body.

    Raises:
        MalformedReviewError: the body is too large, not JSON, or not an
            `admission.k8s.io/v1` AdmissionReview with a request; the message names the field.
    """
    if len(body) > MAX_REVIEW_BYTES:
        raise MalformedReviewError(
            f"AdmissionReview body is {len(body)} bytes, more than the maximum {MAX_REVIEW_BYTES}"
        )
    if not body.strip():
        raise MalformedReviewError("empty body: expected an admission.k8s.io/v1 AdmissionReview")
    try:
        return AdmissionReview.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedReviewError(f"invalid AdmissionReview: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{location}: {error['msg']}")
    return "; ".join(problems)


def status_body(code: int, message: str) -> bytes:
    """Return a Kubernetes `Status` object as the body of an error response."""
    reason = {
        400: "BadRequest",
        404: "NotFound",
        405: "MethodNotAllowed",
        413: "RequestEntityTooLarge",
    }.get(code, "InternalError")
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return json.dumps(status, separators=(",", ":")).encode()


# -- shared steps ---------------------------------------------------------------------------


def _metadata(document: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if document is None:
        return {}
    metadata = document.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _namespace_of(request: AdmissionRequest) -> str:
    namespace = request.namespace or _metadata(request.object).get("namespace") or ""
    return namespace if isinstance(namespace, str) else ""


def _labels_from_namespace_object(request: AdmissionRequest) -> Mapping[str, str] | None:
    labels = _metadata(request.namespace_object).get("labels")
    if isinstance(labels, Mapping) and all(
        isinstance(key, str) and isinstance(value, str) for key, value in labels.items()
    ):
        return dict(labels)
    return None


async def _digest_required(
    request: AdmissionRequest,
    settings: AdmissionSettings,
    namespaces: NamespaceLabelLookup | None,
    timeout: float,
) -> bool:
    if not settings.require_digest:
        return False
    namespace = _namespace_of(request)
    labels = _labels_from_namespace_object(request) if request.namespace_object else None
    if labels is None and namespace:
        lookup = namespaces or StaticNamespaceLabels(settings.namespace_labels)
        labels = await labels_within(lookup, namespace, timeout)
    required = settings.digest_required(labels)
    logger.debug(
        "namespace %s: labels %s, digest %s",
        namespace or "-",
        "unknown" if labels is None else "known",
        "required" if required else "not required",
    )
    return required


def _images_of(request: AdmissionRequest) -> list[PodImage]:
    if request.object is None:
        raise MalformedReviewError(
            f"request.object is missing for a {request.operation} of {request.kind.kind}"
        )
    return extract_images(request.kind.group, request.kind.kind, request.object)


def _being_deleted(request: AdmissionRequest) -> bool:
    return request.operation == "UPDATE" and bool(
        _metadata(request.object).get("deletionTimestamp")
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Clock:
    """Remaining time of one review's budget."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + budget

    def remaining(self) -> float:
        return max(self._deadline - self._loop.time(), 0.0)


# -- validating webhook ---------------------------------------------------------------------


async def validate(
    body: bytes,
    decider: ImageDecider,
    settings: AdmissionSettings,
    *,
    budget: float | None = None,
    recorder: DeploymentRecorder | None = None,
    namespaces: NamespaceLabelLookup | None = None,
) -> tuple[int, bytes]:
    """Handle a validating AdmissionReview and build its response.

    Args:
        body: the request body as the API server sent it.
        decider: decides each image reference (the gate).
        settings: the `admission` section.
        budget: seconds for the whole review; defaults to `settings.budget_seconds`.
        recorder: where admitted workloads are recorded; None records nothing.
        namespaces: where namespace labels come from; defaults to `settings.namespace_labels`.

    Returns:
        The HTTP status (200, or 400 for a malformed review) and the response body.
    """
    clock = _Clock(settings.budget_seconds if budget is None else budget)
    try:
        review = parse_review(body)
        answer = await _validate_request(review.request, decider, settings, clock, namespaces)
    except MalformedReviewError as exc:
        logger.info("rejected a malformed AdmissionReview: %s", exc)
        return 400, status_body(400, str(exc))
    request = review.request
    logger.info(
        "admission %s %s %s/%s %s: %s",
        request.uid,
        request.operation,
        _namespace_of(request) or "-",
        request.kind.kind,
        _workload_name(request) or "-",
        "allowed" if answer.allowed else f"denied: {answer.message}",
    )
    if recorder is not None and answer.allowed and not request.dry_run:
        await _record(recorder, request, answer.digests)
    return 200, answer.to_bytes()


async def _validate_request(
    request: AdmissionRequest,
    decider: ImageDecider,
    settings: AdmissionSettings,
    clock: _Clock,
    namespaces: NamespaceLabelLookup | None,
) -> AdmissionAnswer:
    # (1): operations without images to check.
    if request.operation in ("DELETE", "CONNECT"):
        return AdmissionAnswer(request.uid, allowed=True)
    if not is_supported(request.kind.group, request.kind.kind):
        kind = f"{request.kind.group}/{request.kind.kind}".lstrip("/")
        logger.info("admission %s: kind %s is not inspected, allowed", request.uid, kind)
        return AdmissionAnswer(
            request.uid,
            allowed=True,
            warnings=(f"regward does not inspect objects of kind {kind}",),
        )
    images = _images_of(request)
    if _being_deleted(request):
        # Removing a finalizer must not be blocked by a policy that changed since admission.
        return AdmissionAnswer(request.uid, allowed=True)
    if not images:
        return AdmissionAnswer(request.uid, allowed=True)

    # (2): perimeter rules and the gate's decisions, within the budget.
    digest_required = await _digest_required(request, settings, namespaces, clock.remaining())
    outcomes = await decide_references(
        [image.image for image in images],
        decider,
        settings,
        timeout=clock.remaining(),
        digest_required=digest_required,
        namespace=_namespace_of(request),
        budget=clock.budget,
    )

    # (3): the response lists every failing image with its reason, and warnings for the rest.
    failures = [image for image in images if not outcomes[image.image].allowed]
    warnings = _warnings(images, outcomes)
    if failures:
        reasons = "; ".join(
            f"{image.describe()} image {image.image}: {outcomes[image.image].reason}"
            for image in failures
        )
        count = len(failures)
        message = f"regward denied {count} image{'s' if count > 1 else ''}: {reasons}"
        return AdmissionAnswer(request.uid, allowed=False, message=message, warnings=warnings)
    digests = {
        reference: outcome.digest
        for reference, outcome in outcomes.items()
        if outcome.digest is not None
    }
    return AdmissionAnswer(request.uid, allowed=True, warnings=warnings, digests=digests)


def _warnings(images: Sequence[PodImage], outcomes: Mapping[str, ImageOutcome]) -> tuple[str, ...]:
    warnings: list[str] = []
    for image in images:
        outcome = outcomes[image.image]
        if outcome.allowed and outcome.warn:
            text = f"regward: {image.describe()} image {image.image}: {outcome.reason}"
            warnings.append(_shorten(text, MAX_WARNING_CHARS))
    if len(warnings) > MAX_WARNINGS:
        extra = len(warnings) - MAX_WARNINGS + 1
        warnings = [*warnings[: MAX_WARNINGS - 1], f"regward: {extra} more images with warnings"]
    return tuple(warnings)


# -- deployment records ---------------------------------------------------------------------


def _workload_name(request: AdmissionRequest) -> str:
    metadata = _metadata(request.object if request.object is not None else request.old_object)
    name = metadata.get("name") or request.name or metadata.get("generateName") or ""
    return name if isinstance(name, str) else ""


def _controlled(document: Mapping[str, Any] | None) -> bool:
    owners = _metadata(document).get("ownerReferences")
    if not isinstance(owners, list):
        return False
    return any(isinstance(owner, Mapping) and owner.get("controller") is True for owner in owners)


async def _record(
    recorder: DeploymentRecorder, request: AdmissionRequest, digests: Mapping[str, str]
) -> None:
    if not is_supported(request.kind.group, request.kind.kind):
        return
    namespace, kind, name = _namespace_of(request), request.kind.kind, _workload_name(request)
    if not name:
        logger.info("admission %s: %s without a name is not recorded", request.uid, kind)
        return
    try:
        if request.operation == "DELETE":
            await asyncio.to_thread(recorder.end, namespace, kind, name)
            return
        if request.operation not in ("CREATE", "UPDATE") or request.object is None:
            return
        if kind == "Pod" and _controlled(request.object):
            return
        if _being_deleted(request):
            return
        images = _images_of(request)
        containers = [
            AdmittedContainer(
                image.container,
                image.container_list,
                image.image,
                digests.get(image.image) or _digest_in(image.image),
            )
            for image in images
        ]
        await asyncio.to_thread(
            recorder.record, namespace, kind, name, containers, request_uid=request.uid
        )
    except (RecordsError, MalformedReviewError) as exc:
        # The admission is kept; a lost record is logged, not turned into a denial.
        logger.error("admission %s: deployment record not written: %s", request.uid, exc)


def _digest_in(reference: str) -> str | None:
    _, at, digest = reference.partition("@")
    return digest if at else None


# -- mutating webhook -----------------------------------------------------------------------


async def mutate(
    body: bytes,
    decider: ImageDecider,
    settings: AdmissionSettings,
    *,
    budget: float | None = None,
    namespaces: NamespaceLabelLookup | None = None,
) -> tuple[int, bytes]:
    """Handle a mutating AdmissionReview: a JSONPatch pins allowed tags to their digests.

    Only references that pass the perimeter rules, carry no digest yet and that the gate
    allowed are rewritten. In a namespace where `requireDigest` applies nothing is rewritten,
    so the validating webhook denies tag references there and authors pin images themselves.

    Returns:
        The HTTP status (200, or 400 for a malformed review) and the response body.
    """
    clock = _Clock(settings.budget_seconds if budget is None else budget)
    try:
        review = parse_review(body)
        answer = await _mutate_request(review.request, decider, settings, clock, namespaces)
    except MalformedReviewError as exc:
        logger.info("rejected a malformed AdmissionReview: %s", exc)
        return 400, status_body(400, str(exc))
    return 200, answer.to_bytes()


async def _mutate_request(
    request: AdmissionRequest,
    decider: ImageDecider,
    settings: AdmissionSettings,
    clock: _Clock,
    namespaces: NamespaceLabelLookup | None,
) -> AdmissionAnswer:
    if request.operation not in ("CREATE", "UPDATE"):
        return AdmissionAnswer(request.uid, allowed=True)
    if not is_supported(request.kind.group, request.kind.kind):
        return AdmissionAnswer(request.uid, allowed=True)
    images = _images_of(request)
    if not images or _being_deleted(request):
        return AdmissionAnswer(request.uid, allowed=True)
    if await _digest_required(request, settings, namespaces, clock.remaining()):
        return AdmissionAnswer(request.uid, allowed=True)

    tagged = [image for image in images if "@" not in image.image]
    outcomes = await decide_references(
        [image.image for image in tagged],
        decider,
        settings,
        timeout=clock.remaining(),
        digest_required=False,
        namespace=_namespace_of(request),
        budget=clock.budget,
    )
    operations: list[dict[str, str]] = []
    for image in tagged:
        outcome = outcomes[image.image]
        pinned = _pinned(image.image, outcome)
        if pinned is None:
            continue
        # `test` makes the API server reject the patch if the field changed in between.
        operations.append({"op": "test", "path": image.pointer, "value": image.image})
        operations.append({"op": "replace", "path": image.pointer, "value": pinned})
    if not operations:
        return AdmissionAnswer(request.uid, allowed=True)
    logger.info(
        "admission %s: pinned %d images of %s/%s to digests",
        request.uid,
        len(operations) // 2,
        _namespace_of(request) or "-",
        _workload_name(request) or request.kind.kind,
    )
    patch = json.dumps(operations, separators=(",", ":")).encode()
    return AdmissionAnswer(request.uid, allowed=True, patch=patch)


def _pinned(reference: str, outcome: ImageOutcome) -> str | None:
    """Return `reference` with its tag replaced by the decided digest, or None to leave it."""
    if not outcome.pinnable or outcome.digest is None:
        return None
    try:
        digest = parse_digest(outcome.digest)
    except InvalidDigestError:
        logger.warning("not pinning %s: the gate returned an invalid digest", reference)
        return None
    name = reference
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    return f"{name}@{digest}"
