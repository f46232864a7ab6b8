"""Pull decisions: resolve a manifest once, gather its signature evidence, evaluate the policy.

The decider owns the gate's caches, and it never serves bytes it did not verify. A manifest is
fetched once per request or taken from the digest-keyed cache, and its digest is checked on the way
in. If the decision allows the pull, the client gets those same bytes.

Index rule: a child manifest pulled by digest passes when it is signed itself, or when an image
index that lists it was allowed in the same repository and was signed itself. An index passes when
it is signed, or, with `indexPolicy: self-or-children`, when every child is signed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from regward.gate.audit import AuditWriter
from regward.gate.caches import BoundedMap, BoundedSet, CachedManifest, DecisionCache, ManifestCache
from regward.gate.evidence import EvidenceGatherer, GatheredEvidence
from regward.gate.upstream import DirectManifestFetcher
from regward.oci.client import FetchedManifest, RegistryClient
from regward.oci.digest import is_digest
from regward.oci.errors import (
    AuthenticationError,
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    OCIError,
    RegistryError,
    TooLargeError,
)
from regward.oci.manifest import Manifest
from regward.policy.evaluate import (
    Decision,
    Facts,
    Verdict,
    evaluate,
)
from regward.policy.match import select_rule
from regward.policy.model import Policy, Rule
from regward.policy.vulnerabilities import ScanStatus, VulnerabilityFacts
from regward.store.db import AuditRecord

if TYPE_CHECKING:
    from regward.scanning.scanner import ImageScanner, ScanResult

logger = logging.getLogger(__name__)

# Decisions that rest on evidence the gate could not fetch are not cached, so the next pull retries.
_UNCACHED_REASONS = frozenset(
    {"evidence-unavailable", "evidence-incomplete", "scan-unavailable", "scan-stale"}
)

DEFAULT_RESCAN_BUDGET = 2.0
"""Seconds a pull waits to refresh a scan result that is older than the rule's `maxScanAge`."""

MAX_INDEX_CHILDREN_CHECKED = 64
"""An index with more children than this is not evaluated child by child (self-or-children)."""

# Layer media types of signature, attestation and SBOM artifacts. A manifest whose layers all have
# one of these types cannot be run as a container, so pulling it (to verify signatures) is allowed.
ACCESSORY_LAYER_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.dsse.envelope.v1+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.in-toto+json",
        "application/spdx+json",
        "text/spdx+json",
        "application/vnd.cyclonedx+json",
    }
)


def redact_upstream(text: str, base_url: str) -> str:
    """Replace `base_url` and its host:port in `text` with "upstream".

    Clients of the gate need to know that the upstream failed, not where it lives.
    """
    netloc = base_url.split("://", 1)[-1]
    hostname = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    text = text.replace(base_url, "upstream").replace(netloc, "upstream")
    return text.replace(hostname, "upstream")


def is_accessory_manifest(manifest: Manifest) -> bool:
    """Tell whether a manifest only carries signatures, attestations or SBOMs."""
    if manifest.is_index or not manifest.layers:
        return False
    return all(layer.media_type in ACCESSORY_LAYER_TYPES for layer in manifest.layers)


@dataclass(frozen=True)
class PullOutcome:
    """The gate's response to one manifest request: the bytes to serve or the error."""

    status: int
    """200 to serve, 403 denied, 404 not found upstream, 502/503 upstream trouble."""
    decision: Decision | None
    media_type: str = ""
    raw: bytes = b""
    digest: str = ""
    error_code: str = ""
    message: str = ""
    warning: str = ""
    cached: bool = False


@dataclass
class RequestContext:
    """The client address, identity and request id recorded in the audit log."""

    client_address: str = ""
    identity: str | None = None
    request_id: str = ""


@dataclass
class DeciderStats:
    """Counters exported as metrics."""

    decisions: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    upstream_errors: int = 0


class Decider:
    """Decide manifest pulls for one upstream registry under one policy."""

    def __init__(
        self,
        policy: Policy,
        client: RegistryClient,
        audit: AuditWriter | None,
        *,
        decision_ttl: float = 300.0,
        manifest_cache_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        scanner: ImageScanner | None = None,
        rescan_budget: float = DEFAULT_RESCAN_BUDGET,
        fetcher: DirectManifestFetcher | None = None,
    ) -> None:
        self.policy = policy
        self.fetcher = fetcher
        """The gate's lean manifest fetcher; None means every fetch uses the registry client."""
        self.scanner = scanner
        """Scans images for rules with a `vulnerabilities` section; None means no feed."""
        self.rescan_budget = rescan_budget
        """Seconds a pull waits to match an image again whose result is older than the rule's
        `maxScanAge`. After that the pull is denied as stale, and the match goes on."""
        self.scanned_parents = BoundedMap(500_000)
        """("", platform manifest digest) → the last index scanned through it, so a change of
        the platform manifest's findings also drops the index's decisions."""
        self.client = client
        self.audit = audit
        self.manifests = ManifestCache(manifest_cache_bytes)
        self.decisions = DecisionCache(decision_ttl, clock=clock)
        self.allowed_blobs = BoundedSet(2_000_000)
        self.signed_parents = BoundedMap(500_000)
        self.signed_itself = BoundedSet(500_000)
        self.stats = DeciderStats()
        self.evidence = EvidenceGatherer(client)
        self._inflight: dict[tuple[str, str, str, str], asyncio.Future[Decision]] = {}

    # -- policy ---------------------------------------------------------------------------

    def replace_policy(self, policy: Policy) -> None:
        """Switch to a new policy; cached decisions of the old revision stop matching."""
        self.policy = policy
        self.decisions.clear()

    def rule_for(self, repository: str) -> Rule | None:
        return select_rule(self.policy, repository)

    # -- pulls ----------------------------------------------------------------------------

    def _without_upstream(self, text: str) -> str:
        """Replace the upstream's address in a client-facing message; the log keeps it."""
        return redact_upstream(text, self.client.base_url)

    async def _get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """Fetch and verify a manifest, through the lean fetcher when it can serve the request."""
        if self.fetcher is not None:
            fetched = await self.fetcher.get_manifest(repository, reference)
            if fetched is not None:
                return fetched
        return await self.client.get_manifest(repository, reference)

    def blob_allowed(self, repository: str, digest: str) -> bool:
        """Tell whether `digest` belongs to a manifest allowed in `repository`."""
        return (repository, digest) in self.allowed_blobs

    async def decide_pull(
        self, repository: str, reference: str, context: RequestContext
    ) -> PullOutcome:
        """Resolve `reference` in `repository`, decide, and return the bytes to serve or the denial."""
        by_digest = is_digest(reference)
        cached = self.manifests.get(repository, reference) if by_digest else None
        if cached is not None:
            media_type, raw, manifest = cached.media_type, cached.raw, cached.manifest
            digest = reference
        else:
            try:
                fetched = await self._get_manifest(repository, reference)
            except NotFoundError as exc:
                return PullOutcome(
                    404,
                    None,
                    error_code=exc.code or "MANIFEST_UNKNOWN",
                    message=f"manifest {repository}:{reference} not found",
                )
            except (DigestMismatchError, ManifestError, TooLargeError) as exc:
                self.stats.upstream_errors += 1
                logger.warning("upstream manifest %s:%s rejected: %s", repository, reference, exc)
                self._audit_error(repository, reference, "", str(exc), context)
                return PullOutcome(
                    502, None, error_code="UNKNOWN", message=self._without_upstream(str(exc))
                )
            except AuthenticationError as exc:
                # The upstream refused access: wrong gate credentials, or the "upstream" is itself a
                # regward gate that denied the image. Either way it is not an outage.
                self.stats.upstream_errors += 1
                logger.warning("upstream rejected access to %s:%s: %s", repository, reference, exc)
                self._audit_error(repository, reference, "", str(exc), context)
                return PullOutcome(
                    503,
                    None,
                    error_code="UNAVAILABLE",
                    message=self._without_upstream(
                        f"the upstream refused access to {repository}:{reference}: {exc}"
                    ),
                )
            except (RegistryError, OCIError) as exc:
                self.stats.upstream_errors += 1
                logger.warning("upstream unavailable for %s:%s: %s", repository, reference, exc)
                self._audit_error(repository, reference, "", str(exc), context)
                return PullOutcome(
                    503,
                    None,
                    error_code="UNAVAILABLE",
                    message=self._without_upstream(
                        f"could not fetch {repository}:{reference} from the upstream: {exc}"
                    ),
                )
            media_type, raw, manifest = fetched.media_type, fetched.raw, fetched.manifest
            digest = fetched.digest
            self.manifests.put(repository, digest, CachedManifest(media_type, raw, manifest))

        decision, from_cache = await self._decide_digest(repository, digest, manifest)
        self._audit_decision(repository, reference, decision, context)
        if decision.verdict is Verdict.DENY:
            logger.info(
                "pull of %s:%s by %s: %s",
                repository,
                reference,
                context.identity or context.client_address or "-",
                decision.message(),
            )
        if not decision.allowed:
            return PullOutcome(
                403,
                decision,
                digest=digest,
                error_code="DENIED",
                message=decision.message(),
                cached=from_cache,
            )
        self._remember_allowed(repository, digest, manifest, decision)
        warning = decision.message() if decision.verdict is Verdict.DENY else ""
        return PullOutcome(
            200,
            decision,
            media_type=media_type,
            raw=raw,
            digest=digest,
            warning=warning if decision.mode is not None and decision.mode.value == "warn" else "",
            cached=from_cache,
        )

    async def _decide_digest(
        self, repository: str, digest: str, manifest: Manifest
    ) -> tuple[Decision, bool]:
        rule = self.rule_for(repository)
        revision = self.policy.revision
        if rule is not None and rule.vulnerabilities is not None and self.scanner is not None:
            # Findings depend on the feed, so its revision is part of the decision's key.
            revision += "/feed:" + await self.scanner.feed_revision()
        key = (digest, revision, rule.name if rule else "")

        cached = self.decisions.get(key)
        if cached is not None and cached.valid_until is not None:
            # An allow that rests on a scan age holds only until the scan is too old.
            if cached.valid_until <= datetime.now(UTC):
                cached = None
        if cached is not None and cached.repository == repository:
            self.stats.cache_hits += 1
            return cached, True
        inflight_key = (repository, *key)
        inflight = self._inflight.get(inflight_key)
        if inflight is not None:
            return await asyncio.shield(inflight), False
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._inflight[inflight_key] = future
        try:
            decision = await self._evaluate(rule, repository, digest, manifest)
            future.set_result(decision)
        except BaseException as exc:
            future.set_exception(exc)
            # Retrieve the exception so asyncio does not log it as never retrieved.
            future.exception()
            raise
        finally:
            del self._inflight[inflight_key]
        if not any(reason.code in _UNCACHED_REASONS for reason in decision.reasons):
            self.decisions.put(key, decision)
        verdict = decision.verdict.value
        self.stats.decisions[verdict] = self.stats.decisions.get(verdict, 0) + 1
        return decision, False

    async def evaluate_as(
        self,
        rule_repository: str,
        repository: str,
        digest: str,
        manifest: Manifest,
        *,
        rescan_budget: float | None = None,
    ) -> Decision:
        """Decide `repository@digest` under the rule of another repository, without caching.

        For promotions: the evidence (signatures, attestations, scan) is read where the image
        is, and the rule is the destination's.

        Args:
            rule_repository: the repository whose rule decides.
            repository: the repository that contains the image and its accessories.
            digest: the manifest digest, resolved once.
            manifest: the manifest of `digest`.
            rescan_budget: seconds to wait when a stale scan result is matched again; the
                decider's `rescan_budget` when None.
        """
        rule = self.rule_for(rule_repository)
        return await self._evaluate(rule, repository, digest, manifest, rescan_budget)

    async def _evaluate(
        self,
        rule: Rule | None,
        repository: str,
        digest: str,
        manifest: Manifest,
        rescan_budget: float | None = None,
    ) -> Decision:
        requires_evidence = rule is not None and (
            rule.signatures is not None or bool(rule.attestations)
        )
        if requires_evidence and is_accessory_manifest(manifest):
            # Signatures and attestations are not signed themselves; verifiers must read them.
            facts = Facts(
                repository=repository,
                digest=digest,
                is_index=False,
                signatures=(),
                inherited_from=digest,
                vulnerabilities=await self._vulnerability_facts(
                    rule, repository, digest, manifest, rescan_budget
                ),
            )
            return evaluate(self.policy, rule, facts)
        inherited = self.signed_parents.get((repository, digest))
        gathered = GatheredEvidence()
        if rule is not None and inherited is None:
            gathered = await self.evidence.gather(rule, repository, digest, manifest)
            if gathered.signed_itself:
                self.signed_itself.add((repository, digest))
        facts = Facts(
            repository=repository,
            digest=digest,
            is_index=manifest.is_index,
            signatures=gathered.signatures,
            children=gathered.children,
            inherited_from=inherited,
            attestations=gathered.attestations,
            now=gathered.now,
        )
        if rule is not None and rule.vulnerabilities is not None:
            # An image that the rule's other checks deny is not scanned, because it is denied
            # anyway, and unsigned images then cannot make the gate download and catalog them.
            other_checks = evaluate(
                self.policy, dataclasses.replace(rule, vulnerabilities=None), facts
            )
            if other_checks.verdict is Verdict.DENY:
                return other_checks
            scan = await self._vulnerability_facts(
                rule, repository, digest, manifest, rescan_budget
            )
            facts = dataclasses.replace(facts, vulnerabilities=scan)
        decision = evaluate(self.policy, rule, facts)
        logger.debug(
            "decided %s@%s: %s (rule %s)", repository, digest, decision.verdict, decision.rule
        )
        return decision

    async def _vulnerability_facts(
        self,
        rule: Rule | None,
        repository: str,
        digest: str,
        manifest: Manifest,
        rescan_budget: float | None = None,
    ) -> VulnerabilityFacts | None:
        """Return the scan result that a rule with a `vulnerabilities` section needs.

        A result older than the rule's `maxScanAge` is matched again, waiting at most
        `rescan_budget` seconds. A result still too old after that is reported as stale.
        """
        if rule is None or rule.vulnerabilities is None:
            return None
        now = datetime.now(UTC)
        today = now.date()
        if is_accessory_manifest(manifest):
            return VulnerabilityFacts(ScanStatus.NOT_APPLICABLE, today)
        if self.scanner is None:
            return VulnerabilityFacts(
                ScanStatus.UNSCANNED,
                today,
                detail="no vulnerability feed is configured",
                remedy="pass --feed PATH_OR_URL to regward serve or regward check",
            )
        if manifest.is_index:
            for child in manifest.manifests:
                self.scanned_parents.set(("", child.digest), digest)
        result = await self.scanner.scan(repository, digest, manifest)
        max_age = rule.vulnerabilities.max_scan_age
        if (
            max_age is not None
            and result.status is ScanStatus.SCANNED
            and result.scanned_at is not None
            and now - result.scanned_at > max_age
        ):
            budget = self.rescan_budget if rescan_budget is None else rescan_budget
            result = await self._refresh_scan(repository, digest, manifest, result, max_age, budget)
            now = datetime.now(UTC)
        return result.facts(today, now)

    async def _refresh_scan(
        self,
        repository: str,
        digest: str,
        manifest: Manifest,
        stale: ScanResult,
        max_age: timedelta,
        budget: float,
    ) -> ScanResult:
        """Match a result older than `max_age` again within `budget` seconds."""
        assert self.scanner is not None
        try:
            refreshed = await asyncio.wait_for(
                self.scanner.scan(repository, digest, manifest, max_age=max_age.total_seconds()),
                budget,
            )
        except TimeoutError:
            logger.info(
                "re-matching the stale scan of %s@%s did not finish within %g s",
                repository,
                digest,
                budget,
            )
            return dataclasses.replace(
                stale,
                status=ScanStatus.STALE,
                detail=f"matching it again did not finish within {budget:g} s",
            )
        if refreshed.status is not ScanStatus.SCANNED:
            return dataclasses.replace(stale, status=ScanStatus.STALE, detail=refreshed.detail)
        logger.info("re-matched the stale scan of %s@%s", repository, digest)
        return refreshed

    def _remember_allowed(
        self, repository: str, digest: str, manifest: Manifest, decision: Decision
    ) -> None:
        for blob in manifest.blob_digests():
            self.allowed_blobs.add((repository, blob))
        rule = self.rule_for(repository)
        # Children inherit an index that was signed itself, or that passed a rule whose only
        # requirements are attestations (BuildKit attestations sit on the index).
        attested_only = rule is not None and rule.signatures is None and bool(rule.attestations)
        signed_index = (
            manifest.is_index
            and decision.verdict is Verdict.ALLOW
            and ((repository, digest) in self.signed_itself or attested_only)
        )
        if signed_index:
            for child in manifest.manifests:
                self.signed_parents.set((repository, child.digest), digest)

    # -- invalidation ---------------------------------------------------------------------

    def findings_changed(self, digest: str) -> None:
        """Forget decisions about `digest`, and about the last index scanned through it, after
        its findings changed (a feed record that affects it appeared, changed or was withdrawn).
        """
        dropped = self.decisions.invalidate_digest(digest)
        parent = self.scanned_parents.get(("", digest))
        if parent is not None:
            dropped += self.decisions.invalidate_digest(parent)
        if dropped:
            logger.info("findings of %s changed: %d cached decisions dropped", digest, dropped)

    def signatures_changed(self, digest: str) -> None:
        """Forget decisions about `digest` after its signatures or attestations changed."""
        dropped = self.decisions.invalidate_digest(digest)
        if dropped:
            logger.info("signatures of %s changed: %d cached decisions dropped", digest, dropped)

    # -- audit ----------------------------------------------------------------------------

    def _audit_decision(
        self, repository: str, reference: str, decision: Decision, context: RequestContext
    ) -> None:
        if self.audit is None:
            return
        if decision.allowed:
            outcome = (
                "allow"
                if decision.verdict is Verdict.ALLOW
                else (decision.mode.value if decision.mode is not None else "allow")
            )
        else:
            outcome = "deny"
        self.audit.submit(
            AuditRecord(
                time=datetime.now(UTC),
                request_id=context.request_id,
                client_address=context.client_address,
                identity=context.identity,
                action="pull",
                repository=repository,
                reference=reference,
                digest=decision.digest,
                decision=outcome,
                rule=decision.rule,
                reasons=[reason.message for reason in decision.reasons],
                policy_revision=decision.policy_revision,
            )
        )

    def _audit_error(
        self,
        repository: str,
        reference: str,
        digest: str,
        message: str,
        context: RequestContext,
        action: str = "pull",
    ) -> None:
        if self.audit is None:
            return
        self.audit.submit(
            AuditRecord(
                time=datetime.now(UTC),
                request_id=context.request_id,
                client_address=context.client_address,
                identity=context.identity,
                action=action,
                repository=repository,
                reference=reference,
                digest=digest or None,
                decision="error",
                rule=None,
                reasons=[message],
                policy_revision=self.policy.revision,
            )
        )
