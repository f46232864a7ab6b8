"""`POST /regward/v1/promotions` on the gate: promote an image between repositories of its upstream.

Request body (JSON): `{"source": "dev/app:v1", "destination": "prod/app:v1"}`. Both are
repositories of the gate's upstream registry, the source with a tag or `@digest` (`latest` when
it names neither), the destination with an optional tag. The destination rule's whole policy is
evaluated on the source image by the gate's own decider, a stale scan result is matched again
first, and blobs move by cross-repository mount.

Responses (JSON): 201 promoted; 403 refused, with the rule and reasons; 400 malformed request;
404 source not found; 502 the upstream failed during the copy. With the gate's token service on,
the caller needs pull on the source and push on the destination, as for the distribution API.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regward.gate.http import BodyTooLargeError, header, read_body, send_error, send_response
from regward.oci.errors import NotFoundError, OCIError
from regward.oci.reference import Reference, normalize_registry, validate_repository, validate_tag
from regward.promotion.interface import DestinationDigestError, PromotionError
from regward.promotion.policycheck import DEFAULT_PROMOTION_RESCAN_BUDGET, DeciderCheck
from regward.promotion.promote import Promoter, result_json

if TYPE_CHECKING:
    from regward.gate.app import Gate
    from regward.gate.http import Receive, Scope, Send

logger = logging.getLogger(__name__)

PROMOTIONS_PATH = "/regward/v1/promotions"
"""The path of the promotion endpoint."""
MAX_REQUEST_BYTES = 16 * 1024


class PromotionRequestWire(BaseModel):
    """The JSON body of a promotion request."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(min_length=1, max_length=1024)
    """`repository[:tag][@digest]` on the gate's upstream."""
    destination: str = Field(min_length=1, max_length=1024)
    """`repository[:tag]` on the gate's upstream."""


def parse_repository_reference(text: str, registry: str) -> Reference:
    """Parse `repository[:tag][@digest]` as a reference on `registry`.

    Raises:
        OCIError: the repository, tag or digest is malformed.
    """
    name, _, digest = text.partition("@")
    repository, tag = name, None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repository, tag = name[:colon], name[colon + 1 :]
    validate_repository(repository)
    if tag is not None:
        validate_tag(tag)
    return Reference(registry, repository, tag, digest or None)


async def handle_promotion(gate: Gate, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request to `/regward/v1/promotions`; see the module docstring."""
    if scope["method"] != "POST":
        await send_error(send, 405, "UNSUPPORTED", f"use POST on {PROMOTIONS_PATH}")
        return
    assert gate.client is not None and gate.decider is not None

    # (1): the request.
    try:
        body = await read_body(receive, MAX_REQUEST_BYTES)
        request = PromotionRequestWire.model_validate_json(body)
        registry = normalize_registry(urlsplit(gate.settings.upstream).netloc)
        source = parse_repository_reference(request.source, registry)
        destination = parse_repository_reference(request.destination, registry)
    except BodyTooLargeError as exc:
        await send_error(send, 413, "SIZE_INVALID", str(exc))
        return
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        await send_error(send, 400, "INVALID_REQUEST", f"invalid promotion request: {problems}")
        return
    except OCIError as exc:
        await send_error(send, 400, "NAME_INVALID", f"invalid promotion request: {exc}")
        return

    # (2): the caller may read the source and push to the destination.
    identity: str | None = None
    if gate.auth is not None:
        checks = (
            ("GET", f"/v2/{source.repository}/manifests/{source.reference}"),
            ("PUT", f"/v2/{destination.repository}/manifests/{destination.tag or 'latest'}"),
        )
        for method, path in checks:
            result = gate.auth.authorize(
                method, path, header(scope, b"authorization"), _client_address(scope)
            )
            if not result.allowed:
                await send_response(
                    send,
                    result.status,
                    result.body,
                    [(k.lower().encode(), v.encode()) for k, v in result.headers],
                    content_type=b"application/json",
                )
                return
            identity = result.identity

    # (3): promote.
    promoter = Promoter(
        DeciderCheck(gate.decider, rescan_budget=DEFAULT_PROMOTION_RESCAN_BUDGET),
        audit=gate.audit.submit,
        identity=identity or f"api:{_client_address(scope) or '-'}",
    )
    try:
        outcome = await promoter.promote(gate.client, source, gate.client, destination)
    except NotFoundError as exc:
        await send_error(send, 404, "MANIFEST_UNKNOWN", str(exc))
        return
    except DestinationDigestError as exc:
        await send_error(send, 400, "DIGEST_INVALID", str(exc))
        return
    except PromotionError as exc:
        logger.warning("promotion of %s to %s failed: %s", source, destination, exc)
        await send_error(send, 502, "PROMOTION_FAILED", str(exc))
        return
    except OCIError as exc:
        logger.warning("promotion of %s to %s failed: %s", source, destination, exc)
        await send_error(send, 502, "UNAVAILABLE", f"the upstream registry failed: {exc}")
        return

    if outcome.promoted and gate.reevaluation is not None:
        gate.reevaluation.saw_promotion(
            destination.repository, destination.tag or outcome.digest, outcome.digest
        )
    status = 201 if outcome.promoted else 403
    await send_response(
        send, status, json.dumps(result_json(outcome)).encode(), content_type=b"application/json"
    )


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""
