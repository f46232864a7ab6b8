"""Decide a set of image references within a time budget: perimeter rules first, then the gate.

Perimeter rules (`allowedRegistries`, `requireDigest`) need no network and deny before the
gate is asked. The remaining references go to the `ImageDecider` concurrently. A decision
that is not ready when the budget runs out gets the configured failure mode, with a reason
stating that it timed out. Such a decision keeps running in the background, so its result lands
in the gate's cache for the API server's retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from regward.admission.config import AdmissionSettings, FailureMode
from regward.admission.interface import ImageDecider, ImageVerdict
from regward.errors import RegwardError
from regward.oci.errors import InvalidReferenceError
from regward.oci.reference import Reference, parse_reference

logger = logging.getLogger(__name__)

MAX_CONCURRENT_DECISIONS = 16
"""Decisions one review runs at the same time."""

MAX_BACKGROUND_DECISIONS = 1024
"""Decisions left running after their budget ran out; past this, late decisions are cancelled."""

_background: set[asyncio.Task[ImageVerdict]] = set()


@dataclass(frozen=True)
class ImageOutcome:
    """The admission result for one distinct image reference."""

    reference: str
    """The reference as the object spells it."""

    allowed: bool
    warn: bool
    reason: str
    """The reason for a denial or warning; empty for a plain allow."""

    digest: str | None = None
    """The digest the decision is about, when the gate resolved one."""

    timed_out: bool = False
    parsed: Reference | None = None
    """The parsed reference, or None when it is not a valid image reference."""

    @property
    def pinnable(self) -> bool:
        """Whether the mutating webhook may rewrite this reference to its digest."""
        return (
            self.allowed
            and self.digest is not None
            and self.parsed is not None
            and self.parsed.digest is None
        )


def _deny(reference: str, reason: str, parsed: Reference | None = None) -> ImageOutcome:
    return ImageOutcome(reference, allowed=False, warn=False, reason=reason, parsed=parsed)


def perimeter_outcome(
    reference: str, settings: AdmissionSettings, *, digest_required: bool, namespace: str
) -> tuple[Reference | None, ImageOutcome | None]:
    """Apply the perimeter rules to one reference.

    Returns:
        The parsed reference (None if invalid), and a denial when a perimeter rule fails or
        None when the gate must decide.
    """
    try:
        parsed = parse_reference(reference)
    except InvalidReferenceError as exc:
        return None, _deny(reference, str(exc))
    if not settings.registry_allowed(parsed):
        allowed = ", ".join(str(entry) for entry in settings.allowed_registries)
        return parsed, _deny(
            reference,
            f"registry {parsed.registry} is not in admission.allowedRegistries ({allowed})",
            parsed,
        )
    if digest_required and parsed.digest is None:
        return parsed, _deny(
            reference,
            f"namespace {namespace} requires images by digest (admission.requireDigest): "
            f"name it as {parsed.name}@sha256:<digest>",
            parsed,
        )
    return parsed, None


async def decide_references(
    references: Iterable[str],
    decider: ImageDecider,
    settings: AdmissionSettings,
    *,
    timeout: float,
    digest_required: bool,
    namespace: str,
    budget: float | None = None,
) -> dict[str, ImageOutcome]:
    """Decide each distinct reference, spending at most `timeout` seconds.

    `budget` is the whole review's time, named in timeout reasons; it defaults to `timeout`.

    Returns:
        An outcome for every distinct reference, keyed by the reference text.
    """
    distinct = list(dict.fromkeys(references))
    if len(distinct) > settings.max_images:
        reason = (
            f"the object names {len(distinct)} distinct images, more than "
            f"admission.maxImages ({settings.max_images})"
        )
        return {reference: _deny(reference, reason) for reference in distinct}

    # (1): perimeter rules, without network.
    outcomes: dict[str, ImageOutcome] = {}
    parsed_by_reference: dict[str, Reference] = {}
    for reference in distinct:
        parsed, denial = perimeter_outcome(
            reference, settings, digest_required=digest_required, namespace=namespace
        )
        if denial is not None:
            logger.debug("image %s denied by a perimeter rule: %s", reference, denial.reason)
            outcomes[reference] = denial
        elif parsed is not None:
            parsed_by_reference[reference] = parsed
    if not parsed_by_reference:
        return outcomes

    # (2): the gate's decisions, concurrently, within the budget.
    limit = asyncio.Semaphore(MAX_CONCURRENT_DECISIONS)
    tasks = {
        reference: asyncio.create_task(_decide_one(decider, reference, limit))
        for reference in parsed_by_reference
    }
    await asyncio.wait(tasks.values(), timeout=max(timeout, 0.0))

    # (3): read what finished; what did not gets the failure mode.
    for reference, task in tasks.items():
        parsed = parsed_by_reference[reference]
        if task.done():
            outcomes[reference] = _outcome_of(reference, parsed, task)
            continue
        _keep_in_background(task)
        allowed = settings.failure_mode is FailureMode.ALLOW
        elapsed = budget if budget is not None else timeout
        logger.info(
            "image %s: decision timed out after %.1f s, %s by admission.failureMode",
            reference,
            elapsed,
            "allowed" if allowed else "denied",
        )
        outcomes[reference] = ImageOutcome(
            reference,
            allowed=allowed,
            warn=allowed,
            reason=(
                f"timed out after {elapsed:.1f} s waiting for the decision "
                f"(admission.failureMode: {settings.failure_mode})"
            ),
            timed_out=True,
            parsed=parsed,
        )
    return outcomes


async def _decide_one(
    decider: ImageDecider, reference: str, limit: asyncio.Semaphore
) -> ImageVerdict:
    async with limit:
        return await decider.decide_reference(reference)


def _outcome_of(
    reference: str, parsed: Reference, task: asyncio.Task[ImageVerdict]
) -> ImageOutcome:
    if task.cancelled():
        return _deny(reference, "the decision was cancelled", parsed)
    error = task.exception()
    if isinstance(error, RegwardError):
        logger.info("image %s: decision failed: %s", reference, error)
        return _deny(reference, f"decision failed: {error}", parsed)
    if error is not None:
        logger.error("image %s: decision raised an unexpected error", reference, exc_info=error)
        return _deny(
            reference, f"decision failed with an internal error: {type(error).__name__}", parsed
        )
    verdict = task.result()
    reason = verdict.reason
    if not verdict.allowed and not reason:
        reason = "denied by policy"
    return ImageOutcome(
        reference,
        allowed=verdict.allowed,
        warn=verdict.warn or (verdict.allowed and verdict.timed_out),
        reason=reason,
        digest=verdict.digest,
        timed_out=verdict.timed_out,
        parsed=parsed,
    )


def _keep_in_background(task: asyncio.Task[ImageVerdict]) -> None:
    if len(_background) >= MAX_BACKGROUND_DECISIONS:
        logger.warning("%d late decisions still running; cancelling another one", len(_background))
        task.cancel()
        return
    _background.add(task)
    task.add_done_callback(_finish_background)


def _finish_background(task: asyncio.Task[ImageVerdict]) -> None:
    _background.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.debug("a late decision failed: %s", error, exc_info=error)
