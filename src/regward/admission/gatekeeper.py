"""OPA Gatekeeper external data provider: image references in, regward's decisions out.

Gatekeeper (v3.11 and later, `externaldata.gatekeeper.sh/v1beta1`) POSTs a `ProviderRequest`
whose `request.keys` are the strings a ConstraintTemplate passed to `external_data`; here they
are image references. The response is a `ProviderResponse` with one item per distinct key:

    {"key": "registry.example.com/app:v1",
     "value": {"allowed": false, "warn": false, "digest": "sha256:…",
               "reason": "no signature verified by authority 'ci'", "timedOut": false}}

`error` is set instead of `value` when the key is not a valid image reference. `systemError`
is set when the whole request is unusable.
Decisions are deterministic for a policy revision and digest, so `idempotent` is true.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regward.admission.checks import decide_references
from regward.admission.config import AdmissionSettings
from regward.admission.interface import ImageDecider

logger = logging.getLogger(__name__)

EXTERNAL_DATA_API_VERSION = "externaldata.gatekeeper.sh/v1beta1"

MAX_PROVIDER_KEYS = 256
"""Maximum number of distinct keys in one ProviderRequest."""

MAX_PROVIDER_BODY_BYTES = 1024 * 1024
"""Maximum ProviderRequest body."""

DEFAULT_PROVIDER_BUDGET = 2.5
"""Seconds for one ProviderRequest: below Gatekeeper's default webhook timeout of 3 s, which
also bounds the provider call."""


class _Keys(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    keys: list[str] = Field(default_factory=list)


class ProviderRequest(BaseModel):
    """A Gatekeeper external data `ProviderRequest`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["externaldata.gatekeeper.sh/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["ProviderRequest"]
    request: _Keys


def _response(items: list[dict[str, Any]], system_error: str = "") -> bytes:
    body: dict[str, Any] = {
        "apiVersion": EXTERNAL_DATA_API_VERSION,
        "kind": "ProviderResponse",
        "response": {"idempotent": True, "items": items},
    }
    if system_error:
        body["response"]["systemError"] = system_error
    return json.dumps(body, separators=(",", ":")).encode()


async def provider(
    body: bytes,
    decider: ImageDecider,
    settings: AdmissionSettings | None = None,
    *,
    budget: float = DEFAULT_PROVIDER_BUDGET,
) -> tuple[int, bytes]:
    """Handle a Gatekeeper external data ProviderRequest and build the ProviderResponse.

    Args:
        body: the request body as Gatekeeper sent it.
        decider: decides each image reference (the gate).
        settings: the `admission` section; its `allowedRegistries` apply to every key and its
            `failureMode` to keys not decided within `budget`. `requireDigest` does not apply,
            because a key carries no namespace.
        budget: seconds for the whole request.

    Returns:
        The HTTP status (200, or 400 with `systemError` set for an unusable request) and the
        ProviderResponse body.
    """
    if len(body) > MAX_PROVIDER_BODY_BYTES:
        message = f"ProviderRequest body is {len(body)} bytes, more than {MAX_PROVIDER_BODY_BYTES}"
        return 400, _response([], message)
    try:
        parsed = ProviderRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        logger.info("rejected a malformed ProviderRequest: %s", problems)
        return 400, _response([], f"invalid ProviderRequest: {problems}")

    keys = list(dict.fromkeys(parsed.request.keys))
    if len(keys) > MAX_PROVIDER_KEYS:
        message = f"ProviderRequest has {len(keys)} distinct keys, more than {MAX_PROVIDER_KEYS}"
        return 400, _response([], message)
    if not keys:
        return 200, _response([])

    effective = settings or AdmissionSettings()
    if effective.max_images < len(keys):
        effective = replace(effective, max_images=len(keys))
    outcomes = await decide_references(
        keys, decider, effective, timeout=budget, digest_required=False, namespace=""
    )

    items: list[dict[str, Any]] = []
    for key in keys:
        outcome = outcomes[key]
        if outcome.parsed is None:
            items.append({"key": key, "error": outcome.reason})
            continue
        items.append(
            {
                "key": key,
                "value": {
                    "allowed": outcome.allowed,
                    "warn": outcome.warn,
                    "digest": outcome.digest or "",
                    "reason": outcome.reason,
                    "timedOut": outcome.timed_out,
                },
            }
        )
    denied = sum(1 for outcome in outcomes.values() if not outcome.allowed)
    logger.info("gatekeeper provider: %d keys, %d denied", len(keys), denied)
    return 200, _response(items)
