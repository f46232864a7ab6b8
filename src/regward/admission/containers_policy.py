"""Translate a regward policy into containers-policy.json(5) and a containers-registries.d(5) file.

podman, CRI-O, skopeo and buildah read these files (through containers/image), so a host that
pulls without the gate still requires the signatures regward requires. The translation:

- a rule with `signatures` becomes `sigstoreSigned` with `keyData` (or `keyPath`); several
  authorities become `keyDatas` (or `keyPaths`), which containers/image reads from 5.33 on;
- an authority with `tlog: required` and a `rekorPublicKey` adds `rekorPublicKeyData`
  (containers/image 5.24 and later), which makes a Rekor SET mandatory;
- a rule without `signatures`, or in `warn` or `audit` mode, becomes `insecureAcceptAnything`;
- `defaultAction` becomes the requirement of the registry scope `HOST`;
- everything else (other registries, other transports) gets the global `default`: `reject`.

Every `sigstoreSigned` requirement uses `signedIdentity: matchRepository`, because cosign
signature payloads name the repository only.

Repository globs map to policy.json scopes only where the semantics agree: a literal
repository becomes `HOST/repo`, `prefix/**` becomes the namespace scope `HOST/prefix` (which
matches `prefix` and everything below it, as the glob does), and `**` becomes `HOST`. Other
globs (`team/*`, `app-?`, `a/**/b`) have no scope form and are reported as unsupported, as are
features with no counterpart (`signatureRepository`, `indexPolicy: self-or-children`, `onError`,
`warn` mode's warnings, `immutableTags`).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regward.admission.interface import AdmissionError
from regward.oci.errors import InvalidReferenceError
from regward.oci.reference import normalize_registry
from regward.policy.match import specificity
from regward.policy.model import DefaultAction, IndexPolicy, Mode, Policy, Rule, TlogMode

logger = logging.getLogger(__name__)

REGISTRIES_D_FILE = "regward.yaml"
"""Name of the file written into the `registries.d` folder."""


class ExportError(AdmissionError):
    """The policy cannot be exported as asked."""


@dataclass(frozen=True)
class ExportNote:
    """A rule feature that has no exact counterpart in policy.json."""

    rule: str
    """The rule's name, or empty for policy-wide notes."""

    message: str
    blocking: bool
    """Whether the exported files would accept images regward denies or deny images regward
    allows for a whole pattern, so the export refuses unless unsupported patterns are skipped."""

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.message}" if self.rule else self.message


@dataclass(frozen=True)
class ContainersPolicy:
    """The exported files' contents."""

    policy: dict[str, Any]
    """The policy.json document."""

    registries_d: dict[str, Any]
    """The registries.d document."""

    key_files: dict[str, bytes] = field(default_factory=dict)
    """Key file name to PEM bytes, when keys are written as files rather than inline."""

    notes: tuple[ExportNote, ...] = ()


def _scope_of(pattern: str) -> str | None:
    """Return the scope suffix for a repository glob, or None when no scope matches the same set.

    The empty string stands for the registry scope itself.
    """
    if pattern == "**":
        return ""
    if pattern.endswith("/**"):
        prefix = pattern[: -len("/**")]
        return prefix if not any(char in prefix for char in "*?") else None
    if any(char in pattern for char in "*?"):
        return None
    return pattern


def _accept_anything() -> list[dict[str, Any]]:
    return [{"type": "insecureAcceptAnything"}]


class _Exporter:
    def __init__(self, policy: Policy, key_dir: Path | None) -> None:
        self.policy = policy
        self.key_dir = key_dir
        self.key_files: dict[str, bytes] = {}
        self.notes: list[ExportNote] = []

    def note(self, rule: str, message: str, *, blocking: bool) -> None:
        self.notes.append(ExportNote(rule, message, blocking))

    def key_field(self, rule: Rule, name: str, pem: bytes) -> str:
        """Return the value for keyPath(s) or keyData(s) for one key."""
        if self.key_dir is None:
            return base64.b64encode(pem).decode("ascii")
        file_name = f"{rule.name}-{name}.pub"
        self.key_files[file_name] = pem
        return str(self.key_dir / file_name)

    def requirement(self, rule: Rule) -> list[dict[str, Any]]:
        if rule.mode is not Mode.ENFORCE:
            self.note(
                rule.name,
                f"mode {rule.mode} has no pull-side form; images are accepted without a check "
                "or a warning",
                blocking=False,
            )
            return _accept_anything()
        if rule.signatures is None:
            return _accept_anything()
        if rule.signatures.index_policy is IndexPolicy.SELF_OR_CHILDREN:
            self.note(
                rule.name,
                "indexPolicy self-or-children has no counterpart; containers/image checks the "
                "signature of the manifest it pulls, so an index must be signed itself",
                blocking=False,
            )
        if rule.on_error.value == "allow":
            self.note(
                rule.name,
                "onError: allow has no counterpart; a signature that cannot be fetched rejects "
                "the pull",
                blocking=False,
            )

        authorities = rule.signatures.authorities
        if rule.signatures.keyless:
            names = ", ".join(item.name for item in rule.signatures.keyless)
            self.note(
                rule.name,
                f"keyless authorities ({names}) have no counterpart in this export; "
                "containers/image's fulcio requirement matches one exact email only",
                blocking=True,
            )
        if not authorities:
            # Nothing here can verify what the rule requires, so pulls are rejected.
            return [{"type": "reject"}]
        for authority in authorities:
            if authority.signature_repository is not None:
                self.note(
                    rule.name,
                    f"authority {authority.name}: signatureRepository "
                    f"{authority.signature_repository} has no counterpart; containers/image "
                    "reads signatures from the image's own repository",
                    blocking=True,
                )
        suffix = "s" if len(authorities) > 1 else ""
        key_type = "keyPath" if self.key_dir is not None else "keyData"
        keys = [self.key_field(rule, item.name, item.key_pem) for item in authorities]
        requirement: dict[str, Any] = {"type": "sigstoreSigned"}
        requirement[key_type + suffix] = keys if suffix else keys[0]
        if suffix:
            self.note(
                rule.name,
                f"{len(keys)} authorities become {key_type}s, which containers/image reads "
                "from version 5.33 on; older versions reject the whole policy.json",
                blocking=False,
            )

        tlog_required = [item.tlog == TlogMode.REQUIRED.value for item in authorities]
        if any(tlog_required) and not all(tlog_required):
            self.note(
                rule.name,
                "authorities disagree on tlog: required; policy.json applies one Rekor "
                "requirement to all keys of a rule",
                blocking=True,
            )
        elif all(tlog_required):
            rekor_keys = [item.rekor_public_key_pem for item in authorities]
            if any(key is None for key in rekor_keys):
                self.note(
                    rule.name,
                    "tlog: required without rekorPublicKey has no counterpart",
                    blocking=True,
                )
            else:
                distinct = list(dict.fromkeys(key for key in rekor_keys if key is not None))
                rekor_fields = [
                    self.key_field(rule, f"rekor{index}", pem) for index, pem in enumerate(distinct)
                ]
                rekor_type = (
                    "rekorPublicKeyPath" if self.key_dir is not None else "rekorPublicKeyData"
                )
                if len(rekor_fields) > 1:
                    requirement[rekor_type + "s"] = rekor_fields
                else:
                    requirement[rekor_type] = rekor_fields[0]
        requirement["signedIdentity"] = {"type": "matchRepository"}
        if rule.immutable_tags is not None:
            self.note(
                rule.name,
                "immutableTags applies to pushes through the gate and has no pull-side form",
                blocking=False,
            )
        return [requirement]

    def scopes(self) -> dict[str, tuple[Rule, str]]:
        """Map each scope suffix to the rule that owns it and the pattern it came from.

        Rules are visited most specific pattern first, so when two patterns map to the same
        scope, the rule regward would pick for that exact repository keeps it.
        """
        candidates = [
            (specificity(pattern), -order, rule, pattern)
            for order, rule in enumerate(self.policy.rules)
            for pattern in rule.repositories
        ]
        candidates.sort(key=lambda item: (item[0], item[1]), reverse=True)

        owners: dict[str, tuple[Rule, str]] = {}
        for _, _, rule, pattern in candidates:
            scope = _scope_of(pattern)
            if scope is None:
                self.note(
                    rule.name,
                    f"repository glob {pattern!r} has no policy.json scope; only literal "
                    "repositories, 'prefix/**' and '**' translate exactly",
                    blocking=True,
                )
                continue
            owner = owners.get(scope)
            if owner is None:
                owners[scope] = (rule, pattern)
            elif owner[0] is not rule:
                self.note(
                    rule.name,
                    f"repository glob {pattern!r} maps to the same scope as {owner[1]!r} of "
                    f"rule {owner[0].name}; policy.json applies that rule to both",
                    blocking=True,
                )
        return owners


def export_containers_policy(
    policy: Policy, registries: Sequence[str], *, key_dir: Path | None = None
) -> ContainersPolicy:
    """Translate `policy` for images pulled from `registries`.

    Args:
        policy: the loaded regward policy.
        registries: `host[:port]` names that clients pull the policy's repositories from
            (the gate, and the upstream registry if hosts pull from it directly).
        key_dir: when given, keys are referenced as files in this folder (keyPath) and
            returned in `key_files`; otherwise they are inlined (keyData).

    Raises:
        ExportError: a registry name is invalid or none is given.

    Returns:
        The documents and the notes about features that did not translate exactly.
    """
    if not registries:
        raise ExportError("expected at least one registry host")
    hosts: list[str] = []
    for registry in registries:
        try:
            hosts.append(normalize_registry(registry))
        except InvalidReferenceError as exc:
            raise ExportError(f"invalid registry {registry!r}: {exc}") from exc

    exporter = _Exporter(policy, key_dir)
    owners = exporter.scopes()
    requirements = {rule.name: exporter.requirement(rule) for rule in policy.rules}

    default_requirement = (
        _accept_anything() if policy.default_action is DefaultAction.ALLOW else [{"type": "reject"}]
    )
    docker: dict[str, Any] = {}
    for host in dict.fromkeys(hosts):
        if "" not in owners:
            docker[host] = default_requirement
        for scope, (rule, _pattern) in sorted(owners.items()):
            docker[f"{host}/{scope}" if scope else host] = requirements[rule.name]

    document = {"default": [{"type": "reject"}], "transports": {"docker": docker}}
    registries_d = {
        "docker": {host: {"use-sigstore-attachments": True} for host in dict.fromkeys(hosts)}
    }
    return ContainersPolicy(document, registries_d, dict(exporter.key_files), tuple(exporter.notes))


def write_containers_policy(exported: ContainersPolicy, output: Path) -> list[Path]:
    """Write `policy.json`, `registries.d/regward.yaml` and any key files under `output`.

    Raises:
        ExportError: a file cannot be written.

    Returns:
        The paths written.
    """
    import yaml

    written: list[Path] = []
    try:
        output.mkdir(parents=True, exist_ok=True)
        policy_path = output / "policy.json"
        policy_path.write_text(json.dumps(exported.policy, indent=2) + "\n")
        written.append(policy_path)
        registries_dir = output / "registries.d"
        registries_dir.mkdir(exist_ok=True)
        registries_path = registries_dir / REGISTRIES_D_FILE
        registries_path.write_text(yaml.safe_dump(exported.registries_d, sort_keys=False))
        written.append(registries_path)
        if exported.key_files:
            key_dir = output / "keys"
            key_dir.mkdir(exist_ok=True)
            for name, pem in exported.key_files.items():
                key_path = key_dir / name
                key_path.write_bytes(pem)
                written.append(key_path)
    except OSError as exc:
        raise ExportError(f"cannot write to {output}: {exc}") from exc
    return written
