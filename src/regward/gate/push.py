"""Push controls: tag immutability on manifest PUT and manifest DELETE, and signature invalidation.

A manifest PUT to a tag that the repository's rule makes immutable is checked twice. The first check
reads the tag's current digest upstream. The second inserts into the tag claims table, whose
primary key lets exactly one of two concurrent pushes of different digests win. Re-pushing the
same digest is allowed. Accessory tags (`sha256-<hex>`, `.sig`, `.att`, `.sbom`) are never frozen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime

from regward.gate.audit import AuditWriter
from regward.gate.decider import Decider, RequestContext, redact_upstream
from regward.gate.http import (
    BodyTooLargeError,
    Receive,
    Route,
    Scope,
    Send,
    header,
    read_body,
    send_error,
)
from regward.oci.client import RegistryClient
from regward.oci.digest import is_digest
from regward.oci.errors import OCIError
from regward.policy.match import is_immutable_tag
from regward.policy.model import Mode, Rule
from regward.store.db import AuditRecord, Store

logger = logging.getLogger(__name__)

MAX_MANIFEST_PUT = 4 * 1024 * 1024
"""Largest manifest body accepted on PUT, the same cap distribution applies by default."""
MAX_TAGS_CHECKED_ON_DELETE = 10_000
ACCESSORY_TAG_SUFFIXES = (".sig", ".att", ".sbom")


def accessory_subject(tag: str) -> str | None:
    """Return the digest a cosign accessory tag (`sha256-<hex>[.sig|.att|.sbom]`) refers to."""
    base = tag
    for suffix in ACCESSORY_TAG_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    algorithm, _, hex_part = base.partition("-")
    if (
        algorithm == "sha256"
        and len(hex_part) == 64
        and all(c in "0123456789abcdef" for c in hex_part)
    ):
        return f"sha256:{hex_part}"
    return None


class PushController:
    """Check and forward manifest PUT and DELETE requests."""

    def __init__(
        self, decider: Decider, client: RegistryClient, store: Store, audit: AuditWriter
    ) -> None:
        self.decider = decider
        self.client = client
        self.store = store
        self.audit = audit
        self._tag_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def put_manifest(
        self, scope: Scope, receive: Receive, send: Send, route: Route, context: RequestContext
    ) -> None:
        """Apply tag immutability to a manifest PUT, then forward it."""
        repository, reference = route.name, route.reference
        try:
            body = await read_body(receive, MAX_MANIFEST_PUT)
        except BodyTooLargeError:
            await send_error(
                send,
                413,
                "SIZE_INVALID",
                f"manifest for {repository}:{reference} is larger than {MAX_MANIFEST_PUT} bytes",
            )
            return
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if is_digest(reference) and reference != digest:
            await send_error(
                send,
                400,
                "DIGEST_INVALID",
                f"manifest body has digest {digest}, but it was pushed as {reference}",
            )
            return
        rule = self.decider.rule_for(repository)
        tag = None if is_digest(reference) else reference
        claimed = False
        if tag is not None and is_immutable_tag(rule, tag):
            assert rule is not None
            lock = self._tag_locks.setdefault((repository, tag), asyncio.Lock())
            async with lock:
                problem, claimed = await self._check_immutable(repository, tag, digest)
                if problem is not None:
                    if rule.mode is Mode.ENFORCE:
                        self._record(
                            context, "push", repository, reference, digest, "deny", rule, problem
                        )
                        await send_error(
                            send,
                            403,
                            "DENIED",
                            f"rule '{rule.name}' denies push of {repository}:{tag}: {problem}",
                            {"rule": rule.name, "tag": tag, "digest": digest},
                        )
                        return
                    logger.warning("rule %s (%s mode): %s", rule.name, rule.mode.value, problem)
                status = await self._forward_put(scope, send, repository, reference, body)
            if status >= 300 and claimed:
                await asyncio.to_thread(self.store.release_tag, repository, tag, digest)
        else:
            status = await self._forward_put(scope, send, repository, reference, body)
        if status < 300:
            self._after_push(tag, body)
        decision = "allow" if status < 300 else "error"
        self._record(
            context, "push", repository, reference, digest, decision, rule, f"upstream {status}"
        )

    async def _check_immutable(
        self, repository: str, tag: str, digest: str
    ) -> tuple[str | None, bool]:
        """Return (problem or None, whether this request now owns the tag claim)."""
        try:
            current = await self.client.head_manifest(repository, tag)
        except OCIError as exc:
            return f"could not read the current digest of immutable tag {tag}: {exc}", False
        if current is not None and current.digest != digest:
            return (
                f"tag {tag} is immutable and points at {current.digest}; "
                f"pushing {digest} would move it (push under a new tag instead)"
            ), False
        existing = await asyncio.to_thread(self.store.claim_tag, repository, tag, digest)
        if existing is not None and existing != digest:
            return (
                f"tag {tag} is immutable and was claimed for {existing}; "
                f"pushing {digest} would move it (push under a new tag instead)"
            ), False
        return None, existing is None

    async def _forward_put(
        self, scope: Scope, send: Send, repository: str, reference: str, body: bytes
    ) -> int:
        content_type = (
            header(scope, b"content-type") or "application/vnd.oci.image.manifest.v1+json"
        )
        try:
            response = await self.client.request(
                "PUT",
                f"/v2/{repository}/manifests/{reference}",
                headers={"Content-Type": content_type},
                data=body,
                allow_redirects=False,
            )
        except OCIError as exc:
            logger.warning("upstream manifest PUT %s:%s failed: %s", repository, reference, exc)
            message = redact_upstream(f"upstream registry unavailable: {exc}", self.client.base_url)
            await send_error(send, 503, "UNAVAILABLE", message)
            return 503
        try:
            payload = await response.read()
            headers: list[tuple[bytes, bytes]] = [
                (b"docker-distribution-api-version", b"registry/2.0")
            ]
            for key in ("Location", "Docker-Content-Digest", "Content-Type", "OCI-Subject"):
                value = response.headers.get(key)
                if value is not None:
                    if key == "Location" and value.startswith(self.client.base_url):
                        value = value[len(self.client.base_url) :]
                    headers.append((key.lower().encode(), value.encode("latin-1")))
            headers.append((b"content-length", str(len(payload)).encode()))
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": payload})
            return response.status
        finally:
            response.release()

    def _after_push(self, tag: str | None, body: bytes) -> None:
        """Drop cached decisions whose signature evidence this push may have changed."""
        if tag is not None:
            subject = accessory_subject(tag)
            if subject is not None:
                self.decider.signatures_changed(subject)
        try:
            parsed = json.loads(body)
        except ValueError:
            return
        subject_field = parsed.get("subject") if isinstance(parsed, dict) else None
        if isinstance(subject_field, dict) and isinstance(subject_field.get("digest"), str):
            self.decider.signatures_changed(subject_field["digest"])

    async def delete_manifest(
        self, scope: Scope, send: Send, route: Route, context: RequestContext
    ) -> None:
        """Reject deleting a manifest that an immutable tag points at, else forward."""
        repository, reference = route.name, route.reference
        rule = self.decider.rule_for(repository)
        problem: str | None = None
        if rule is not None and rule.immutable_tags is not None:
            if not is_digest(reference):
                if is_immutable_tag(rule, reference):
                    problem = f"tag {reference} is immutable and cannot be deleted"
            else:
                problem = await self._immutable_tag_pointing_at(rule, repository, reference)
        if problem is not None and rule is not None and rule.mode is Mode.ENFORCE:
            self._record(context, "delete", repository, reference, reference, "deny", rule, problem)
            await send_error(
                send,
                403,
                "DENIED",
                f"rule '{rule.name}' denies delete of {repository}@{reference}: {problem}",
                {"rule": rule.name},
            )
            return
        try:
            response = await self.client.request(
                "DELETE", f"/v2/{repository}/manifests/{reference}", allow_redirects=False
            )
        except OCIError as exc:
            message = redact_upstream(f"upstream registry unavailable: {exc}", self.client.base_url)
            await send_error(send, 503, "UNAVAILABLE", message)
            return
        try:
            payload = await response.read()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (b"docker-distribution-api-version", b"registry/2.0"),
                        (b"content-length", str(len(payload)).encode()),
                        (
                            b"content-type",
                            response.headers.get("Content-Type", "application/json").encode(),
                        ),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
        finally:
            response.release()
        if response.status < 300 and is_digest(reference):
            self.decider.signatures_changed(reference)
        decision = "allow" if response.status < 300 else "error"
        self._record(
            context,
            "delete",
            repository,
            reference,
            reference,
            decision,
            rule,
            f"upstream {response.status}",
        )

    async def _immutable_tag_pointing_at(
        self, rule: Rule, repository: str, digest: str
    ) -> str | None:
        try:
            tags = await self.client.list_tags(repository)
        except OCIError as exc:
            return f"could not list tags to check immutability: {exc}"
        candidates = [
            tag for tag in tags[:MAX_TAGS_CHECKED_ON_DELETE] if is_immutable_tag(rule, tag)
        ]
        semaphore = asyncio.Semaphore(16)

        async def points_here(tag: str) -> bool:
            async with semaphore:
                descriptor = await self.client.head_manifest(repository, tag)
                return descriptor is not None and descriptor.digest == digest

        try:
            results = await asyncio.gather(*(points_here(tag) for tag in candidates))
        except OCIError as exc:
            return f"could not read tags to check immutability: {exc}"
        hits = [tag for tag, hit in zip(candidates, results, strict=True) if hit]
        if hits:
            return f"immutable tag {hits[0]} points at {digest}"
        return None

    def _record(
        self,
        context: RequestContext,
        action: str,
        repository: str,
        reference: str,
        digest: str,
        decision: str,
        rule: Rule | None,
        reason: str,
    ) -> None:
        if decision == "deny":
            logger.info(
                "%s of %s:%s by %s denied by rule %s: %s",
                action,
                repository,
                reference,
                context.identity or context.client_address or "-",
                rule.name if rule else "-",
                reason,
            )
        self.audit.submit(
            AuditRecord(
                time=datetime.now(UTC),
                request_id=context.request_id,
                client_address=context.client_address,
                identity=context.identity,
                action=action,
                repository=repository,
                reference=reference,
                digest=digest,
                decision=decision,
                rule=rule.name if rule else None,
                reasons=[reason],
                policy_revision=self.decider.policy.revision,
            )
        )
