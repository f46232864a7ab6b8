"""The default `PromotionCheck`: the destination repository's whole policy rule, on the source.

The rule is the one `select_rule` picks for the destination repository, and the evidence
(signatures, attestations, the vulnerability scan) is read where the image is now, in the source
repository. The decision is the gate's own (`Decider.evaluate_as`), so a promotion the check
allows is an image the gate would serve from the destination. A scan result older than the
rule's `maxScanAge` is matched again first, waiting up to `rescan_budget` seconds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from regward.gate.decider import Decider
from regward.oci.client import RegistryClient
from regward.policy.model import Policy
from regward.promotion.interface import CheckOutcome, PromotionSubject

if TYPE_CHECKING:
    from regward.scanning.scanner import ImageScanner

logger = logging.getLogger(__name__)

DEFAULT_PROMOTION_RESCAN_BUDGET = 120.0
"""Seconds a promotion waits to match a stale scan result again; a promotion is not a pull, so
it can wait longer than the gate's default."""


class DeciderCheck:
    """Checks promotions with an existing decider, whose client reads the source registry."""

    def __init__(self, decider: Decider, *, rescan_budget: float | None = None) -> None:
        """Use `decider`; `rescan_budget` overrides its budget for stale scan results."""
        self.decider = decider
        self.rescan_budget = rescan_budget

    async def check(self, subject: PromotionSubject) -> CheckOutcome:
        """Evaluate the destination rule on the source image.

        A rule in mode warn or audit allows with its reasons listed, as the gate does.
        """
        decision = await self.decider.evaluate_as(
            subject.destination_repository,
            subject.repository,
            subject.digest,
            subject.manifest,
            rescan_budget=self.rescan_budget,
        )
        logger.debug(
            "promotion of %s@%s to %s: %s (rule %s)",
            subject.repository,
            subject.digest,
            subject.destination,
            decision.verdict,
            decision.rule,
        )
        return CheckOutcome(
            allowed=decision.allowed,
            rule=decision.rule,
            reasons=tuple(reason.message for reason in decision.reasons),
            policy_revision=decision.policy_revision,
        )


class PolicyCheck:
    """Checks promotions against a loaded policy, with a decider built for the source client."""

    def __init__(
        self,
        policy: Policy,
        *,
        scanner: ImageScanner | None = None,
        rescan_budget: float = DEFAULT_PROMOTION_RESCAN_BUDGET,
    ) -> None:
        """Create a check.

        Args:
            policy: the policy whose destination rule decides.
            scanner: scans source images for rules with a `vulnerabilities` section; without
                one, such rules see every image as unscanned.
            rescan_budget: seconds to wait when a stale scan result is matched again.
        """
        self.policy = policy
        self.scanner = scanner
        self.rescan_budget = rescan_budget
        self._decider: tuple[RegistryClient, Decider] | None = None

    def decider_for(self, client: RegistryClient) -> Decider:
        """Return the decider that reads evidence through `client`, creating it once."""
        if self._decider is None or self._decider[0] is not client:
            decider = Decider(
                self.policy, client, None, scanner=self.scanner, rescan_budget=self.rescan_budget
            )
            self._decider = (client, decider)
        return self._decider[1]

    async def check(self, subject: PromotionSubject) -> CheckOutcome:
        """Evaluate the destination rule on the source image; see `DeciderCheck.check`."""
        return await DeciderCheck(self.decider_for(subject.client)).check(subject)
