"""Conversion of a validated `PolicyWire` into the frozen model, with checks needing context.

Those checks are unique rule and authority names, and key files or inline PEMs that must
contain a public key of a supported type. Every problem is collected, not raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from regward.policy._problems import format_key_path
from regward.policy._wire import AuthorityWire, KeySourceWire, PolicyWire, RuleWire
from regward.policy._yaml import Loc, line_of
from regward.policy.errors import PolicyProblem
from regward.policy.model import (
    Authority,
    BlobAccess,
    DefaultAction,
    ImmutableTags,
    IndexPolicy,
    Mode,
    OnError,
    Rule,
    SignatureRequirement,
    TlogMode,
)

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
            authority_names: dict[str, int] = {}
            authorities: list[Authority] = []
            for index, authority_wire in enumerate(wire.signatures.authorities):
                authority_loc: Loc = (*section_loc, "authorities", index)
                first = authority_names.setdefault(authority_wire.name, index)
                if first != index:
                    self._problem(
                        (*authority_loc, "name"),
                        f"duplicate authority name {authority_wire.name!r} in this rule, already "
                        f"used by authorities[{first}]",
                    )
                authority = self._convert_authority(authority_wire, authority_loc)
                if authority is not None:
                    authorities.append(authority)
            signatures = SignatureRequirement(
                authorities=tuple(authorities),
                index_policy=IndexPolicy(wire.signatures.index_policy),
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
        )

    def _convert_authority(self, wire: AuthorityWire, loc: Loc) -> Authority | None:
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

    def _read_key_file(self, path: Path, loc: Loc) -> bytes | None:
        resolved = path.resolve()
        cached = self.key_files.get(resolved)
        if cached is not None:
            return cached
        try:
            with resolved.open("rb") as handle:
                data = handle.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            self._problem(loc, f"cannot read key file {str(path)!r}: {exc.strerror or exc}")
            return None
        if len(data) > MAX_KEY_FILE_BYTES:
            self._problem(
                loc,
                f"key file {str(path)!r} is too large: expected at most {MAX_KEY_FILE_BYTES} "
                "bytes of PEM",
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
