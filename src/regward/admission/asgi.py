"""ASGI routing for the admission endpoints, for the gate to mount under its own application.

| method and path | handler |
|---|---|
| `POST /admission/validate` | `review.validate` |
| `POST /admission/mutate` | `review.mutate` |
| `POST /gatekeeper/provider` | `gatekeeper.provider` |

Bodies are read up to the handler's size limit; a larger body gets 413 without being read to
the end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from regward.admission.config import AdmissionSettings
from regward.admission.gatekeeper import DEFAULT_PROVIDER_BUDGET, MAX_PROVIDER_BODY_BYTES, provider
from regward.admission.interface import ImageDecider, NamespaceLabelLookup
from regward.admission.review import MAX_REVIEW_BYTES, mutate, status_body, validate

if TYPE_CHECKING:
    from regward.admission.records import DeploymentRecorder

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VALIDATE_PATH = "/admission/validate"
MUTATE_PATH = "/admission/mutate"
PROVIDER_PATH = "/gatekeeper/provider"


class BodyTooLargeError(Exception):
    """A request body exceeded its limit while it was read."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read an ASGI request body of at most `limit` bytes.

    Raises:
        BodyTooLargeError: the body is larger than `limit`.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AdmissionEndpoints:
    """Serves the validating and mutating webhooks and the Gatekeeper provider."""

    def __init__(
        self,
        decider: ImageDecider,
        settings: AdmissionSettings,
        *,
        recorder: DeploymentRecorder | None = None,
        namespaces: NamespaceLabelLookup | None = None,
        provider_budget: float = DEFAULT_PROVIDER_BUDGET,
    ) -> None:
        self.decider = decider
        self.settings = settings
        self.recorder = recorder
        self.namespaces = namespaces
        self.provider_budget = provider_budget

    def handles(self, path: str) -> bool:
        """Tell whether `path` is one of the endpoints served here."""
        return path in (VALIDATE_PATH, MUTATE_PATH, PROVIDER_PATH)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI HTTP request for an admission or Gatekeeper path."""
        path: str = scope["path"]
        if not self.handles(path):
            message = f"no such endpoint: {path}"
            await _send_json(send, 404, status_body(404, message))
            return
        if scope["method"] != "POST":
            message = f"method {scope['method']} is not allowed on {path}: use POST"
            await _send_json(send, 405, status_body(405, message), [(b"allow", b"POST")])
            return

        limit = MAX_PROVIDER_BODY_BYTES if path == PROVIDER_PATH else MAX_REVIEW_BYTES
        try:
            body = await read_body(receive, limit)
        except BodyTooLargeError as exc:
            logger.info("%s: %s", path, exc)
            await _send_json(send, 413, status_body(413, str(exc)))
            return

        if path == VALIDATE_PATH:
            status, payload = await validate(
                body,
                self.decider,
                self.settings,
                recorder=self.recorder,
                namespaces=self.namespaces,
            )
        elif path == MUTATE_PATH:
            status, payload = await mutate(
                body, self.decider, self.settings, namespaces=self.namespaces
            )
        else:
            status, payload = await provider(
                body, self.decider, self.settings, budget=self.provider_budget
            )
        await _send_json(send, status, payload)
