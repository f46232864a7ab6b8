"""Sigstore trust roots: the Fulcio CAs, Rekor and CT log keys, and timestamp authorities.

A `TrustRoot` is read from a `trusted_root.json` document (media type
`application/vnd.dev.sigstore.trustedroot+json;version=0.1`). Two named roots ship inside the
`sigstore` package and are read from there, never fetched: `public-good` (sigstore.dev) and
`staging` (sigstage.dev). A private Sigstore is trusted by loading its own `trusted_root.json`.

Nothing here touches the network. Key-based verification does not use trust roots at all.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import pydantic
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import TimeRange
from sigstore_models.trustroot import v1 as trustroot_v1

from regward.signatures.errors import SignatureError

logger = logging.getLogger(__name__)

PUBLIC_GOOD = "public-good"
"""Name of Sigstore's public-good instance (fulcio.sigstore.dev, rekor.sigstore.dev)."""

STAGING = "staging"
"""Name of Sigstore's staging instance (sigstage.dev), for tests against staging signatures."""

MAX_TRUSTED_ROOT_SIZE = 1024 * 1024
"""Maximum size in bytes of a trusted_root.json; the public-good root is about 7 KiB."""

EXPIRY_WARNING_PERIOD = timedelta(days=30)
"""A trust root whose last usable Fulcio CA, Rekor key or CT log key expires within this period
is reported as close to expiry."""

# The directories inside the sigstore package that hold the trusted roots it was released with,
# named after the TUF repository each root comes from (sigstore 4.x, `sigstore/_store/`).
_EMBEDDED_ROOTS = {
    PUBLIC_GOOD: "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
    STAGING: "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
}

TrustedPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
"""Key types that transparency logs and CT logs in a trusted root use."""


class TrustRootError(SignatureError):
    """A trusted root that cannot be read, parsed or used."""


class TrustKind(StrEnum):
    """The role of one entry of a trusted root."""

    FULCIO = "fulcio"
    """A certificate authority that issues signing certificates."""
    REKOR = "rekor"
    """A transparency log whose signed entry timestamps and checkpoints are trusted."""
    CT_LOG = "ctlog"
    """A certificate transparency log whose SCTs are trusted."""
    TSA = "tsa"
    """An RFC 3161 timestamp authority."""


@dataclass(frozen=True)
class ValidityPeriod:
    """The closed time range in which a trusted key or CA may be used; `end` None is open."""

    start: datetime
    """First instant of validity (UTC)."""
    end: datetime | None
    """Last instant of validity (UTC), or None while the entry is current."""

    def contains(self, moment: datetime) -> bool:
        """Tell whether `moment` lies within the range, both ends included."""
        if moment < self.start:
            return False
        return self.end is None or moment <= self.end


@dataclass(frozen=True)
class TrustedLog:
    """A Rekor or CT log: its public key, its log id and when the key may be used."""

    kind: TrustKind
    """`TrustKind.REKOR` or `TrustKind.CT_LOG`."""
    url: str
    """Base URL of the log, for messages only; it is never contacted."""
    log_id: str
    """Lower-case hex of the log id; for Rekor and CT logs this is SHA-256 of the DER key."""
    public_key: TrustedPublicKey = field(repr=False)
    """The log's public key."""
    validity: ValidityPeriod
    """When the key signs entries."""


@dataclass(frozen=True)
class TrustedAuthority:
    """A Fulcio CA or a timestamp authority with its certificate chain."""

    kind: TrustKind
    """`TrustKind.FULCIO` or `TrustKind.TSA`."""
    subject: str
    """`organization/commonName` as the trusted root names it."""
    uri: str
    """URI of the authority, for messages only."""
    certificates: tuple[x509.Certificate, ...] = field(repr=False)
    """The chain as listed: issuing certificate first, root last."""
    validity: ValidityPeriod
    """When the authority issues certificates or timestamps."""

    @property
    def expires(self) -> datetime:
        """The earliest of the validity end and the expiry of every certificate in the chain."""
        moments = [certificate.not_valid_after_utc for certificate in self.certificates]
        if self.validity.end is not None:
            moments.append(self.validity.end)
        return min(moments)


@dataclass(frozen=True)
class TrustExpiry:
    """One entry of a trusted root with the moment it stops being usable, for reports."""

    kind: TrustKind
    """The entry's role."""
    name: str
    """The log URL or the CA subject and URI."""
    start: datetime
    """First instant of validity."""
    expires: datetime | None
    """When the entry stops being usable; None when it has no end."""
    active: bool
    """True when the entry is usable at the time of the report."""


@dataclass(frozen=True)
class TrustRoot:
    """A parsed Sigstore trusted root.

    Build one with `TrustRoot.load`, `TrustRoot.public_good`, `TrustRoot.staging` or
    `TrustRoot.from_bytes`.
    """

    name: str
    """`public-good`, `staging`, or the path the root was loaded from."""
    fulcio: tuple[TrustedAuthority, ...]
    """Certificate authorities that issue signing certificates."""
    rekor: tuple[TrustedLog, ...]
    """Transparency logs."""
    ct_logs: tuple[TrustedLog, ...]
    """Certificate transparency logs."""
    timestamp_authorities: tuple[TrustedAuthority, ...]
    """RFC 3161 timestamp authorities."""
    sigstore_root: TrustedRoot = field(repr=False, compare=False)
    """The same document as the `sigstore` package's model, for `sigstore.verify.Verifier`."""
    skipped: tuple[str, ...] = ()
    """Entries that were ignored because their key or certificate cannot be used."""
    # Holds the verifier once built: a list, because the dataclass is frozen.
    _verifier: list[Verifier] = field(default_factory=list, repr=False, compare=False)

    def sigstore_verifier(self) -> Verifier:
        """Return a `sigstore.verify.Verifier` for this root, built on first use.

        The verifier only verifies offline material: regward never calls its methods that
        contact Rekor.
        """
        if not self._verifier:
            self._verifier.append(Verifier(trusted_root=self.sigstore_root))
        return self._verifier[0]

    @classmethod
    def from_bytes(cls, document: bytes, name: str) -> TrustRoot:
        """Parse a trusted_root.json document.

        Args:
            document: the JSON bytes.
            name: how the root is named in messages, e.g. its path.

        Raises:
            TrustRootError: the document is too large, not a trusted root, or trusts no Fulcio
                CA or no transparency log.
        """
        if len(document) > MAX_TRUSTED_ROOT_SIZE:
            raise TrustRootError(
                f"trusted root {name} is too large: got {len(document)} bytes, expected at most "
                f"{MAX_TRUSTED_ROOT_SIZE}"
            )
        try:
            inner = trustroot_v1.TrustedRoot.from_json(document)
        except (pydantic.ValidationError, ValueError) as exc:
            raise TrustRootError(f"trusted root {name} is not a valid trusted root: {exc}") from exc
        try:
            # sigstore.models.TrustedRoot has no public constructor from bytes; `from_file`
            # parses the file with the same model and passes it to this constructor.
            sigstore_root = TrustedRoot(inner)
        except SigstoreError as exc:
            raise TrustRootError(f"trusted root {name} is not usable: {exc}") from exc

        skipped: list[str] = []
        fulcio = _authorities(inner.certificate_authorities, TrustKind.FULCIO, skipped)
        tsas = _authorities(inner.timestamp_authorities, TrustKind.TSA, skipped)
        rekor = _logs(inner.tlogs, TrustKind.REKOR, skipped)
        ct_logs = _logs(inner.ctlogs, TrustKind.CT_LOG, skipped)
        if not fulcio:
            raise TrustRootError(
                f"trusted root {name} lists no usable Fulcio certificate authority"
            )
        if not rekor:
            raise TrustRootError(f"trusted root {name} lists no usable transparency log key")
        for entry in skipped:
            logger.debug("trusted root %s: ignored %s", name, entry)
        return cls(
            name=name,
            fulcio=fulcio,
            rekor=rekor,
            ct_logs=ct_logs,
            timestamp_authorities=tsas,
            sigstore_root=sigstore_root,
            skipped=tuple(skipped),
        )

    @classmethod
    def load(cls, path: str | Path) -> TrustRoot:
        """Read and parse a trusted_root.json file.

        Raises:
            TrustRootError: the file cannot be read or is not a usable trusted root.
        """
        try:
            with Path(path).open("rb") as handle:
                document = handle.read(MAX_TRUSTED_ROOT_SIZE + 1)
        except OSError as exc:
            raise TrustRootError(
                f"cannot read trusted root {str(path)!r}: {exc.strerror or exc}"
            ) from exc
        return cls.from_bytes(document, str(path))

    @classmethod
    def public_good(cls) -> TrustRoot:
        """Return Sigstore's public-good trusted root as shipped in the `sigstore` package.

        Raises:
            TrustRootError: the installed `sigstore` package does not contain it.
        """
        return named_trust_root(PUBLIC_GOOD)

    @classmethod
    def staging(cls) -> TrustRoot:
        """Return Sigstore's staging trusted root as shipped in the `sigstore` package.

        Raises:
            TrustRootError: the installed `sigstore` package does not contain it.
        """
        return named_trust_root(STAGING)

    def rekor_log(self, log_id: str) -> TrustedLog | None:
        """Return the Rekor log whose id is `log_id` (hex, any case), or None."""
        wanted = log_id.lower()
        for log in self.rekor:
            if log.log_id == wanted:
                return log
        return None

    def ct_log(self, log_id: bytes) -> TrustedLog | None:
        """Return the CT log whose id is the raw `log_id` of an SCT, or None."""
        wanted = log_id.hex()
        for log in self.ct_logs:
            if log.log_id == wanted:
                return log
        return None

    def fulcio_certificates_at(self, moment: datetime) -> list[x509.Certificate]:
        """Return every certificate of the Fulcio CAs whose validity period contains `moment`."""
        certificates: list[x509.Certificate] = []
        for authority in self.fulcio:
            if authority.validity.contains(moment):
                certificates.extend(authority.certificates)
        return certificates

    def expiries(self, now: datetime) -> list[TrustExpiry]:
        """List every entry with its start, its expiry and whether it is usable at `now`."""
        entries: list[TrustExpiry] = []
        for authority in (*self.fulcio, *self.timestamp_authorities):
            expires = authority.expires
            entries.append(
                TrustExpiry(
                    kind=authority.kind,
                    name=f"{authority.subject} ({authority.uri})",
                    start=authority.validity.start,
                    expires=expires,
                    active=authority.validity.start <= now <= expires,
                )
            )
        entries.extend(
            TrustExpiry(
                kind=log.kind,
                name=f"{log.url} (log id {log.log_id[:16]}…)",
                start=log.validity.start,
                expires=log.validity.end,
                active=log.validity.contains(now),
            )
            for log in (*self.rekor, *self.ct_logs)
        )
        return entries

    def expiry_warnings(
        self, now: datetime, period: timedelta = EXPIRY_WARNING_PERIOD
    ) -> list[str]:
        """Return a message for each role whose last usable entry expires within `period`.

        A role (Fulcio, Rekor, CT log) with no entry usable at `now` is reported as expired,
        because new signatures can then no longer be verified with this root. Expired entries
        next to a current one are normal: they verify old signatures.
        """
        warnings: list[str] = []
        entries = self.expiries(now)
        for kind in (TrustKind.FULCIO, TrustKind.REKOR, TrustKind.CT_LOG):
            of_kind = [entry for entry in entries if entry.kind is kind]
            if not of_kind:
                continue
            active = [entry for entry in of_kind if entry.active]
            if not active:
                warnings.append(
                    f"trusted root {self.name}: no {kind} entry is valid at {now:%Y-%m-%d}"
                )
                continue
            if any(entry.expires is None for entry in active):
                continue
            last = max(entry.expires for entry in active if entry.expires is not None)
            if last - now <= period:
                warnings.append(
                    f"trusted root {self.name}: the last valid {kind} entry expires on "
                    f"{last:%Y-%m-%d %H:%M} UTC; update the trusted root"
                )
        return warnings

    def log_expiry_warnings(self, now: datetime | None = None) -> list[str]:
        """Log `expiry_warnings` at WARNING and return them."""
        warnings = self.expiry_warnings(now or datetime.now(UTC))
        for message in warnings:
            logger.warning("%s", message)
        return warnings


@functools.cache
def named_trust_root(name: str) -> TrustRoot:
    """Return the trusted root `public-good` or `staging` from the installed `sigstore` package.

    The root is read once per process and never refreshed: it is as current as the installed
    `sigstore` release. A warning is logged when it is close to expiry.

    Raises:
        TrustRootError: the name is unknown or the package lacks the file.
    """
    directory = _EMBEDDED_ROOTS.get(name)
    if directory is None:
        raise TrustRootError(
            f"unknown trusted root name: got {name!r}, expected one of {sorted(_EMBEDDED_ROOTS)}"
        )
    resource = importlib.resources.files("sigstore") / "_store" / directory / "trusted_root.json"
    try:
        document = resource.read_bytes()
    except OSError as exc:
        raise TrustRootError(
            f"the installed sigstore package has no {name} trusted root: {exc}"
        ) from exc
    root = TrustRoot.from_bytes(document, name)
    root.log_expiry_warnings()
    return root


def _validity(period: TimeRange | None) -> ValidityPeriod:
    if period is None:
        # A key without a validity period has always been valid.
        return ValidityPeriod(datetime.min.replace(tzinfo=UTC), None)
    return ValidityPeriod(_utc(period.start), _utc(period.end) if period.end else None)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _authorities(
    entries: Sequence[trustroot_v1.CertificateAuthority], kind: TrustKind, skipped: list[str]
) -> tuple[TrustedAuthority, ...]:
    authorities: list[TrustedAuthority] = []
    for entry in entries:
        subject = f"{entry.subject.organization}/{entry.subject.common_name}"
        try:
            certificates = tuple(
                x509.load_der_x509_certificate(certificate.raw_bytes)
                for certificate in entry.cert_chain.certificates
            )
        except ValueError as exc:
            skipped.append(f"{kind} {subject}: certificate cannot be parsed: {exc}")
            continue
        if not certificates:
            skipped.append(f"{kind} {subject}: empty certificate chain")
            continue
        authorities.append(
            TrustedAuthority(
                kind=kind,
                subject=subject,
                uri=entry.uri or "",
                certificates=certificates,
                validity=_validity(entry.valid_for),
            )
        )
    return tuple(authorities)


def _logs(
    entries: Sequence[trustroot_v1.TransparencyLogInstance], kind: TrustKind, skipped: list[str]
) -> tuple[TrustedLog, ...]:
    logs: list[TrustedLog] = []
    for entry in entries:
        raw = entry.public_key.raw_bytes
        if raw is None:
            skipped.append(f"{kind} {entry.base_url}: no public key")
            continue
        try:
            key = serialization.load_der_public_key(raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            # Staging's retired CT log stores a PKCS#1 RSA key, which is not SubjectPublicKeyInfo.
            skipped.append(f"{kind} {entry.base_url}: key is not a DER SubjectPublicKeyInfo: {exc}")
            continue
        if not isinstance(
            key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
        ):
            skipped.append(f"{kind} {entry.base_url}: unsupported key type {type(key).__name__}")
            continue
        log_id = entry.log_id.key_id.hex()
        logs.append(
            TrustedLog(
                kind=kind,
                url=entry.base_url,
                log_id=log_id,
                public_key=key,
                validity=_validity(entry.public_key.valid_for),
            )
        )
    return tuple(logs)


def spki_sha256(key: TrustedPublicKey) -> str:
    """Return the hex SHA-256 of a key's DER SubjectPublicKeyInfo (RFC 6962 log id)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
