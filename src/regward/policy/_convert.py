"""Conversion of a validated `PolicyWire` into the frozen model, with checks needing context.

Those checks are unique rule and authority names, and key files or inline PEMs that must
contain a public key of a supported type. Every problem is collected, not raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from regward.policy._problems import format_key_path
from regward.policy._wire import (
    AttestationWire,
    AuthorityWire,
    KeylessWire,
    KeySourceWire,
    PolicyWire,
    RuleWire,
    TrustedRootWire,
    parse_duration,
)
from regward.policy._yaml import Loc, line_of
from regward.policy.attestations import (
    AttestationRule,
    make_provenance_condition,
    predicate_type_problem,
)
from regward.policy.errors import PolicyProblem
from regward.policy.model import (
    Authority,
    BlobAccess,
    DefaultAction,
    ImmutableTags,
    IndexPolicy,
    KeylessIdentity,
    Mode,
    OnError,
    Rule,
    SbomSource,
    SignatureRequirement,
    TlogMode,
)
from regward.policy.vulnerabilities import convert_vulnerabilities
from regward.signatures.dsse import normalize_predicate_type

if TYPE_CHECKING:
    from regward.signatures.trust import TrustRoot

logger = logging.getLogger(__name__)

MAX_KEY_FILE_BYTES = 64 * 1024
"""Maximum size of a key file in bytes; a PEM public key is far smaller."""

MIN_RSA_KEY_BITS = 2048
"""Smallest RSA modulus accepted for an authority key."""

_SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_SUPPORTED_KEYS = "ECDSA P-256, P-384 or P-521, RSA of at least 2048 bits, or Ed25519"


@dataclass
class Converter:
    """Converter of a validated `PolicyWire` that collects the problems needing context."""

    base_dir: Path
    root: yaml.Node | None
    problems: list[PolicyProblem] = field(default_factory=list)
    key_files: dict[Path, bytes] = field(default_factory=dict)
    """Raw bytes of every key file read, by resolved path, in order of first reference."""

    def _problem(self, loc: Loc, message: str) -> None:
        self.problems.append(PolicyProblem(format_key_path(loc), message, line_of(self.root, loc)))

    def convert(self, wire: PolicyWire) -> tuple[DefaultAction, BlobAccess, tuple[Rule, ...]]:
        """Convert `wire`; the result is complete only if `problems` stays empty."""
        rule_names: dict[str, int] = {}
        rules: list[Rule] = []
        for index, rule_wire in enumerate(wire.rules):
            loc: Loc = ("rules", index)
            first = rule_names.setdefault(rule_wire.name, index)
            if first != index:
                self._problem(
                    (*loc, "name"),
                    f"duplicate rule name {rule_wire.name!r}, already used by rules[{first}]",
                )
            rules.append(self._convert_rule(rule_wire, loc))
        return DefaultAction(wire.default_action), BlobAccess(wire.blobs), tuple(rules)

    def _convert_rule(self, wire: RuleWire, loc: Loc) -> Rule:
        signatures: SignatureRequirement | None = None
        if wire.signatures is not None:
            section_loc: Loc = (*loc, "signatures")
            authorities, keyless = self.convert_authorities(
                wire.signatures.authorities, section_loc
            )
            signatures = SignatureRequirement(
                authorities=authorities,
                index_policy=IndexPolicy(wire.signatures.index_policy),
                keyless=keyless,
                count=wire.signatures.count,
            )

        immutable_tags: ImmutableTags | None = None
        if wire.immutable_tags is not None:
            immutable_tags = ImmutableTags(
                patterns=tuple(wire.immutable_tags.patterns),
                exclude=tuple(wire.immutable_tags.exclude),
            )

        return Rule(
            name=wire.name,
            repositories=tuple(wire.repositories),
            mode=Mode(wire.mode),
            on_error=OnError(wire.on_error),
            signatures=signatures,
            immutable_tags=immutable_tags,
            vulnerabilities=(
                convert_vulnerabilities(wire.vulnerabilities)
                if wire.vulnerabilities is not None
                else None
            ),
            attestations=self._convert_attestations(wire.attestations, loc),
            sbom_source=SbomSource(wire.sbom_source),
        )

    def convert_authorities(
        self, wires: list[AuthorityWire], loc: Loc
    ) -> tuple[tuple[Authority, ...], tuple[KeylessIdentity, ...]]:
        """Convert an `authorities` list into key and keyless authorities, checking names."""
        authority_names: dict[str, int] = {}
        authorities: list[Authority] = []
        keyless: list[KeylessIdentity] = []
        for index, authority_wire in enumerate(wires):
            authority_loc: Loc = (*loc, "authorities", index)
            first = authority_names.setdefault(authority_wire.name, index)
            if first != index:
                self._problem(
                    (*authority_loc, "name"),
                    f"duplicate authority name {authority_wire.name!r} in this rule, already "
                    f"used by authorities[{first}]",
                )
            if authority_wire.keyless is not None:
                identity = self._convert_keyless(
                    authority_wire, authority_wire.keyless, authority_loc
                )
                if identity is not None:
                    keyless.append(identity)
                continue
            authority = self._convert_authority(authority_wire, authority_loc)
            if authority is not None:
                authorities.append(authority)
        return tuple(authorities), tuple(keyless)

    def _convert_keyless(
        self, wire: AuthorityWire, keyless: KeylessWire, loc: Loc
    ) -> KeylessIdentity | None:
        root_loc: Loc = (*loc, "keyless", "trustedRoot")
        trusted_root = self._load_trusted_root(keyless.trusted_root, root_loc)
        if trusted_root is None:
            return None
        return KeylessIdentity(
            name=wire.name,
            issuer=keyless.issuer,
            issuer_regexp=keyless.issuer_regexp,
            subject=keyless.subject,
            subject_regexp=keyless.subject_regexp,
            trusted_root=trusted_root,
            signature_repository=wire.signature_repository,
            ignore_sct=keyless.insecure_ignore_sct,
        )

    def _load_trusted_root(self, source: TrustedRootWire | None, loc: Loc) -> TrustRoot | None:
        """Return the trust root a keyless authority names; public-good when it names none."""
        from regward.signatures.trust import (
            MAX_TRUSTED_ROOT_SIZE,
            PUBLIC_GOOD,
            TrustRoot,
            TrustRootError,
            named_trust_root,
        )

        try:
            if source is None or source.name is not None:
                return named_trust_root(source.name if source is not None else PUBLIC_GOOD)
            assert source.path is not None  # guaranteed by TrustedRootWire's validator
            path = self.base_dir / source.path
            data = self._read_key_file(path, (*loc, "path"), MAX_TRUSTED_ROOT_SIZE)
            if data is None:
                return None
            root = TrustRoot.from_bytes(data, str(path))
        except TrustRootError as exc:
            self._problem(loc, str(exc))
            return None
        root.log_expiry_warnings()
        return root

    def _convert_attestations(
        self, wires: list[AttestationWire] | None, loc: Loc
    ) -> tuple[AttestationRule, ...]:
        if not wires:
            return ()
        names: dict[str, int] = {}
        rules: list[AttestationRule] = []
        for index, wire in enumerate(wires):
            entry_loc: Loc = (*loc, "attestations", index)
            first = names.setdefault(wire.name, index)
            if first != index:
                self._problem(
                    (*entry_loc, "name"),
                    f"duplicate attestation name {wire.name!r} in this rule, already used by "
                    f"attestations[{first}]",
                )
            authorities, keyless = self.convert_authorities(wire.authorities, entry_loc)
            provenance = (
                make_provenance_condition(
                    wire.provenance.builder_id, wire.provenance.source_repository
                )
                if wire.provenance is not None
                else None
            )
            rule = AttestationRule(
                name=wire.name,
                predicate_type=normalize_predicate_type(wire.predicate_type),
                authorities=authorities,
                keyless=keyless,
                count=wire.count,
                allow_unsigned=wire.allow_unsigned,
                provenance=provenance,
                max_age=parse_duration(wire.max_age) if wire.max_age is not None else None,
            )
            problem = predicate_type_problem(rule)
            if problem is not None:
                self._problem((*entry_loc, "predicateType"), problem)
            rules.append(rule)
        return tuple(rules)

    def _convert_authority(self, wire: AuthorityWire, loc: Loc) -> Authority | None:
        assert wire.key is not None  # guaranteed by AuthorityWire's validator
        key_pem = self._load_key(wire.key, (*loc, "key"))
        rekor_pem: bytes | None = None
        if wire.rekor_public_key is not None:
            rekor_pem = self._load_key(wire.rekor_public_key, (*loc, "rekorPublicKey"))
            if rekor_pem is None:
                return None
        if key_pem is None:
            return None
        return Authority(
            name=wire.name,
            key_pem=key_pem,
            signature_repository=wire.signature_repository,
            rekor_public_key_pem=rekor_pem,
            tlog=TlogMode(wire.tlog),
        )

    def _load_key(self, source: KeySourceWire, loc: Loc) -> bytes | None:
        """Return the key as SubjectPublicKeyInfo PEM, or None after recording a problem."""
        if source.path is not None:
            path = self.base_dir / source.path
            data = self._read_key_file(path, (*loc, "path"))
            if data is None:
                return None
            return self._parse_key(data, (*loc, "path"), f"key file {str(path)!r}")
        assert source.pem is not None  # guaranteed by KeySourceWire's validator
        return self._parse_key(source.pem.encode("utf-8"), (*loc, "pem"), "inline PEM")

    def _read_key_file(
        self, path: Path, loc: Loc, max_bytes: int = MAX_KEY_FILE_BYTES
    ) -> bytes | None:
        resolved = path.resolve()
        cached = self.key_files.get(resolved)
        if cached is not None:
            return cached
        try:
            with resolved.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            self._problem(loc, f"cannot read key file {str(path)!r}: {exc.strerror or exc}")
            return None
        if len(data) > max_bytes:
            self._problem(
                loc,
                f"key file {str(path)!r} is too large: expected at most {max_bytes} bytes",
            )
            return None
        self.key_files[resolved] = data
        return data

    def _parse_key(self, data: bytes, loc: Loc, label: str) -> bytes | None:
        """Return `data` re-encoded as SubjectPublicKeyInfo PEM, or None after a problem.

        `label` names the key source in messages, such as "key file 'cosign.pub'".
        """
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError):
            logger.debug("cannot parse %s at %s", label, format_key_path(loc), exc_info=True)
            if b"PRIVATE KEY-----" in data:
                self._problem(
                    loc,
                    f"{label} contains a private key: expected the public key "
                    "('-----BEGIN PUBLIC KEY-----'), such as cosign.pub",
                )
                return None
            self._problem(
                loc,
                f"{label} is not a PEM public key: expected a '-----BEGIN PUBLIC KEY-----' block",
            )
            return None
        except UnsupportedAlgorithm as exc:
            self._problem(loc, f"{label} has an unsupported key type: {exc}")
            return None

        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, _SUPPORTED_CURVES):
                self._problem(
                    loc, f"{label} uses curve {key.curve.name}; expected {_SUPPORTED_KEYS}"
                )
                return None
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_KEY_BITS:
                self._problem(
                    loc, f"{label} is an RSA key of {key.key_size} bits; expected {_SUPPORTED_KEYS}"
                )
                return None
        elif not isinstance(key, ed25519.Ed25519PublicKey):
            self._problem(loc, f"{label} is a {type(key).__name__}; expected {_SUPPORTED_KEYS}")
            return None
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
