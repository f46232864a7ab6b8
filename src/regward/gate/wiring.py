"""Optional parts of the gate that live in other packages: the token service and admission.

They are built here so that the gate imports them only when they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regward.admission.interface import ImageDecider, ImageVerdict
from regward.gate.decider import RequestContext
from regward.oci.errors import InvalidReferenceError
from regward.oci.reference import parse_reference

if TYPE_CHECKING:
    from regward.admission.asgi import AdmissionEndpoints
    from regward.auth.service import AuthService
    from regward.gate.app import Gate


class GateImageDecider(ImageDecider):
    """Decide image references for admission with the gate's decider and its caches.

    The repository of every reference is looked up on the gate's upstream, whatever registry host
    the reference names: `admission.allowedRegistries` keeps references to other hosts out before
    they get here.
    """

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def decide_reference(self, reference: str) -> ImageVerdict:
        try:
            parsed = parse_reference(reference)
        except InvalidReferenceError as exc:
            return ImageVerdict(reference, None, False, False, f"invalid image reference: {exc}")
        decider = self._gate.decider
        assert decider is not None
        outcome = await decider.decide_pull(
            parsed.repository, parsed.reference, RequestContext(identity="admission")
        )
        digest = outcome.digest or None
        if outcome.status == 200:
            return ImageVerdict(reference, digest, True, bool(outcome.warning), outcome.warning)
        return ImageVerdict(reference, digest, False, False, outcome.message)


def build_auth(gate: Gate) -> AuthService:
    """Build the token service from the config file's `auth` section.

    The realm clients are sent to is `auth.realm` when set, else the gate's own listen address,
    which is right for a gate that clients reach directly.
    """
    from regward.auth.config import load_auth_settings
    from regward.auth.service import AuthService
    from regward.policy.match import select_rule

    settings = load_auth_settings(gate.settings.auth, gate.settings.config_dir)
    host = gate.settings.listen_host
    if ":" in host:
        host = f"[{host}]"
    realm = settings.realm or f"http://{host}:{gate.settings.listen_port}/token"

    def protected(repository: str) -> bool:
        rule = select_rule(gate.policy, repository)
        return rule is not None and (rule.signatures is not None or rule.immutable_tags is not None)

    return AuthService(
        settings, gate.store, realm=realm, protected=protected, audit=gate.audit.submit
    )


def build_admission(gate: Gate) -> AdmissionEndpoints:
    """Build the admission and Gatekeeper endpoints from the policy's `admission` section."""
    from regward.admission.asgi import AdmissionEndpoints
    from regward.admission.config import parse_admission_settings
    from regward.admission.namespaces import namespace_lookup_for
    from regward.admission.records import DeploymentRecorder

    section = (
        gate.policy.admission if gate.policy.admission is not None else gate.settings.admission
    )
    settings = parse_admission_settings(section)
    return AdmissionEndpoints(
        GateImageDecider(gate),
        settings,
        recorder=DeploymentRecorder(gate.store.engine),
        namespaces=namespace_lookup_for(settings),
    )
