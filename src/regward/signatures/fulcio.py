"""Fulcio signing certificates: identity, path to a trusted CA, and embedded SCTs.

Pure functions over parsed certificates and a `TrustRoot`; no I/O. The identity of a keyless
signature is the certificate's subject alternative names (email, URI, DNS, IP, and Fulcio's
OtherName `1.3.6.1.4.1.57264.1.7` for usernames) together with the OIDC issuer extension
(`1.3.6.1.4.1.57264.1.8`, or the older `1.3.6.1.4.1.57264.1.1`), as Fulcio documents them in
docs/oid-info.md.

`IdentityPolicy` matches regular expressions against the *whole* value (`re.fullmatch`). This is
stricter than cosign, whose `--certificate-identity-regexp` is an unanchored Go `MatchString`:
there `^https://github.com/acme/` also accepts `https://github.com/acme/x@evil` and
`acme.*` accepts `evil.com/acme`. A pattern that must allow a suffix ends with `.*`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from regward.signatures.errors import InvalidAuthorityError, SignatureVerificationError
from regward.signatures.trust import TrustRoot

logger = logging.getLogger(__name__)

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
"""Fulcio's first issuer extension: the issuer URL as raw bytes (deprecated by Fulcio)."""

OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
"""Fulcio's issuer extension: the issuer URL as a DER UTF8String."""

USERNAME_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
"""OtherName type of a SAN that carries a username as a DER UTF8String."""

PRECERTIFICATE_SIGNING_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")
"""Extended key usage of an RFC 6962 precertificate signing certificate."""

MAX_CERTIFICATE_PEM_SIZE = 32 * 1024
"""Maximum size in bytes of the certificate annotation; Fulcio leaf PEMs are about 1.3 KiB."""

MAX_CHAIN_PEM_SIZE = 64 * 1024
"""Maximum size in bytes of the chain annotation; the public-good chain is about 1.5 KiB."""

MAX_CHAIN_CERTIFICATES = 8
"""Maximum number of certificates read from a chain annotation."""

MAX_IDENTITY_LENGTH = 4096
"""Longest SAN or issuer value matched against a policy; longer values never match."""

_UTF8_STRING_TAG = 0x0C


@dataclass(frozen=True)
class CertificateIdentity:
    """The identity a signing certificate was issued to, as Fulcio records it."""

    subjects: tuple[str, ...]
    """Every subject alternative name value: emails, URIs, DNS names, IPs and usernames."""
    issuer: str | None
    """The OIDC issuer from extension .1.8 or .1.1; None when the certificate has neither."""

    def describe(self) -> str:
        """Return `subject` (issuer `issuer`) for messages."""
        subjects = ", ".join(self.subjects) or "(no subject alternative name)"
        return f"{subjects} (issuer {self.issuer or 'none'})"


@dataclass(frozen=True)
class IdentityPolicy:
    """The identity a keyless signature must have: an issuer and a subject, exact or pattern.

    Exactly one of `issuer` and `issuer_regexp`, and exactly one of `subject` and
    `subject_regexp`, must be set. Patterns use Python `re` syntax and must match the whole value.

    Raises:
        InvalidAuthorityError: a pair has none or both set, or a pattern does not compile.
    """

    issuer: str | None = None
    """The exact OIDC issuer URL, e.g. `https://token.actions.githubusercontent.com`."""
    issuer_regexp: str | None = None
    """A pattern the whole issuer must match."""
    subject: str | None = None
    """The exact subject: an email, a URI such as a workflow reference, or a username."""
    subject_regexp: str | None = None
    """A pattern one whole subject alternative name must match."""
    _issuer_pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _subject_pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check that each pair has exactly one value and compile the patterns."""
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise InvalidAuthorityError(
                "a keyless identity needs exactly one of issuer and issuerRegExp"
            )
        if (self.subject is None) == (self.subject_regexp is None):
            raise InvalidAuthorityError(
                "a keyless identity needs exactly one of subject and subjectRegExp"
            )
        object.__setattr__(self, "_issuer_pattern", _compile(self.issuer_regexp, "issuerRegExp"))
        object.__setattr__(self, "_subject_pattern", _compile(self.subject_regexp, "subjectRegExp"))

    def describe(self) -> str:
        """Return the required identity for messages."""
        subject = self.subject if self.subject is not None else f"/{self.subject_regexp}/"
        issuer = self.issuer if self.issuer is not None else f"/{self.issuer_regexp}/"
        return f"{subject} (issuer {issuer})"

    def check(self, identity: CertificateIdentity) -> None:
        """Check that the certificate identity satisfies this policy.

        Raises:
            SignatureVerificationError: the issuer or every subject differs (check `identity`).
        """
        issuer = identity.issuer
        if issuer is None or not self._matches(issuer, self.issuer, self._issuer_pattern):
            raise SignatureVerificationError(
                "identity",
                "certificate issuer does not match",
                got=repr(issuer),
                expected=self.issuer
                if self.issuer is not None
                else f"a match of the whole value for {self.issuer_regexp!r}",
            )
        if not any(
            self._matches(subject, self.subject, self._subject_pattern)
            for subject in identity.subjects
        ):
            raise SignatureVerificationError(
                "identity",
                "certificate subject does not match",
                got=", ".join(identity.subjects) or "no subject alternative name",
                expected=self.subject
                if self.subject is not None
                else f"a match of the whole value for {self.subject_regexp!r}",
            )

    @staticmethod
    def _matches(value: str, exact: str | None, pattern: re.Pattern[str] | None) -> bool:
        if len(value) > MAX_IDENTITY_LENGTH:
            return False
        if exact is not None:
            return hmac.compare_digest(value.encode(), exact.encode())
        return pattern is not None and pattern.fullmatch(value) is not None


def _compile(pattern: str | None, key: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidAuthorityError(
            f"{key} {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


def load_certificate(pem: str, what: str) -> x509.Certificate:
    """Parse one PEM certificate from an annotation or bundle.

    Raises:
        SignatureVerificationError: too large or not a PEM certificate (check `certificate`).
    """
    if len(pem) > MAX_CERTIFICATE_PEM_SIZE:
        raise SignatureVerificationError(
            "certificate",
            f"{what} is too large",
            got=f"{len(pem)} characters",
            expected=f"at most {MAX_CERTIFICATE_PEM_SIZE}",
        )
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureVerificationError(
            "certificate", f"{what} is not a PEM certificate: {exc}"
        ) from exc
    if len(certificates) != 1:
        raise SignatureVerificationError(
            "certificate",
            f"{what} must hold exactly one certificate",
            got=str(len(certificates)),
            expected="1",
        )
    return certificates[0]


def load_chain(pem: str | None) -> list[x509.Certificate]:
    """Parse the PEM certificates of a `dev.sigstore.cosign/chain` annotation; None gives [].

    Raises:
        SignatureVerificationError: too large, too many certificates, or not PEM.
    """
    if not pem:
        return []
    if len(pem) > MAX_CHAIN_PEM_SIZE:
        raise SignatureVerificationError(
            "certificate-chain",
            "certificate chain annotation is too large",
            got=f"{len(pem)} characters",
            expected=f"at most {MAX_CHAIN_PEM_SIZE}",
        )
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureVerificationError(
            "certificate-chain", f"certificate chain is not PEM certificates: {exc}"
        ) from exc
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise SignatureVerificationError(
            "certificate-chain",
            "certificate chain has too many certificates",
            got=str(len(certificates)),
            expected=f"at most {MAX_CHAIN_CERTIFICATES}",
        )
    return certificates


def certificate_identity(certificate: x509.Certificate) -> CertificateIdentity:
    """Read the subject alternative names and the OIDC issuer of a Fulcio certificate.

    Raises:
        SignatureVerificationError: the two issuer extensions disagree, or one is malformed
            (check `identity`).
    """
    subjects: list[str] = []
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    subjects.extend(names.get_values_for_type(x509.RFC822Name))
    subjects.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
    subjects.extend(names.get_values_for_type(x509.DNSName))
    subjects.extend(str(address) for address in names.get_values_for_type(x509.IPAddress))
    subjects.extend(
        _der_utf8_string(other.value, "username OtherName")
        for other in names.get_values_for_type(x509.OtherName)
        if other.type_id == USERNAME_OTHERNAME_OID
    )

    issuer_v1 = _extension_bytes(certificate, OIDC_ISSUER_OID)
    issuer_v2 = _extension_bytes(certificate, OIDC_ISSUER_V2_OID)
    issuer: str | None = None
    if issuer_v2 is not None:
        issuer = _der_utf8_string(issuer_v2, "issuer extension 1.3.6.1.4.1.57264.1.8")
    if issuer_v1 is not None:
        try:
            legacy = issuer_v1.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureVerificationError(
                "identity", "issuer extension 1.3.6.1.4.1.57264.1.1 is not UTF-8"
            ) from exc
        # Fulcio writes both extensions with the same value. A certificate where they differ
        # was not issued by Fulcio's rules, so either value could be the one a reader trusts.
        if issuer is not None and issuer != legacy:
            raise SignatureVerificationError(
                "identity",
                "certificate has two different OIDC issuers",
                got=f"{legacy!r} in 1.3.6.1.4.1.57264.1.1",
                expected=f"{issuer!r} as in 1.3.6.1.4.1.57264.1.8",
            )
        issuer = legacy
    return CertificateIdentity(subjects=tuple(subjects), issuer=issuer)


def verify_certificate_path(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    trust_root: TrustRoot,
    moment: datetime,
) -> list[x509.Certificate]:
    """Build and check the path from `leaf` to a Fulcio CA of `trust_root` at `moment`.

    `untrusted` certificates (the chain annotation) only help to build the path. The anchors are
    the certificates of the Fulcio CAs whose validity period contains `moment`; every
    certificate on the path must be valid at `moment`. The leaf must allow digital signatures
    and carry the code-signing extended key usage.

    Returns:
        The path without the leaf: the issuing CA first, the trust anchor last.

    Raises:
        SignatureVerificationError: no path exists, a certificate is invalid at `moment`, or
            a key usage is wrong (check `certificate-chain` or `certificate-usage`).
    """
    anchors = trust_root.fulcio_certificates_at(moment)
    if not anchors:
        raise SignatureVerificationError(
            "certificate-chain",
            f"trusted root {trust_root.name} has no Fulcio CA valid at {moment.isoformat()}",
        )
    # Fulcio certificates carry the code-signing EKU, which the web PKI profile does not
    # expect; it is checked below instead. Every other web PKI extension rule still applies.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    intermediates = [certificate for certificate in untrusted if not _is_self_signed(certificate)]
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(moment)
        .extension_policies(ca_policy=ca_policy, ee_policy=leaf_policy)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, intermediates)
    except (VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
        raise SignatureVerificationError(
            "certificate-chain",
            f"certificate does not chain to a Fulcio CA of trusted root {trust_root.name} "
            f"at {moment.isoformat()}: {exc}",
        ) from exc

    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise SignatureVerificationError(
            "certificate-usage", f"signing certificate lacks a key usage extension: {exc}"
        ) from exc
    if not usage.digital_signature:
        raise SignatureVerificationError(
            "certificate-usage", "signing certificate does not allow digital signatures"
        )
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise SignatureVerificationError(
            "certificate-usage", "signing certificate lacks the code-signing extended key usage"
        )
    return list(verified.chain[1:])


def verify_embedded_sct(
    leaf: x509.Certificate, path: Sequence[x509.Certificate], trust_root: TrustRoot
) -> datetime:
    """Verify an SCT embedded in `leaf` with a CT log key of `trust_root` (RFC 6962 §3.2).

    The SCT signs the precertificate: the leaf's TBSCertificate without the SCT extension, and
    SHA-256 of the issuer's SubjectPublicKeyInfo. When the issuer is a precertificate signing
    certificate, the issuer key is that certificate's own issuer (RFC 6962 §3.1).

    Args:
        leaf: the signing certificate.
        path: the verified path from `verify_certificate_path`, issuing CA first.
        trust_root: supplies the CT log keys and their validity periods.

    Returns:
        The timestamp of the first SCT that verified.

    Raises:
        SignatureVerificationError: no embedded SCT, or none verifies (check `sct`).
    """
    try:
        extension = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound as exc:
        raise SignatureVerificationError(
            "sct", "signing certificate has no embedded signed certificate timestamp"
        ) from exc
    if not path:
        raise SignatureVerificationError("sct", "signing certificate has no issuer to check an SCT")
    issuer = path[0]
    if _is_precertificate_signer(issuer):
        if len(path) < 2:
            raise SignatureVerificationError(
                "sct", "precertificate signing certificate has no issuer in the path"
            )
        issuer = path[1]
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    tbs = leaf.tbs_precertificate_bytes

    failures: list[str] = []
    for sct in extension:
        try:
            _verify_sct(sct, tbs, issuer_key_hash, trust_root)
        except SignatureVerificationError as exc:
            failures.append(str(exc))
            continue
        return _sct_time(sct)
    raise SignatureVerificationError(
        "sct",
        f"no embedded SCT verifies with trusted root {trust_root.name}: {'; '.join(failures)}",
    )


def _verify_sct(
    sct: SignedCertificateTimestamp, tbs: bytes, issuer_key_hash: bytes, trust_root: TrustRoot
) -> None:
    log = trust_root.ct_log(sct.log_id)
    if log is None:
        raise SignatureVerificationError(
            "sct", f"SCT is from CT log {sct.log_id.hex()}, which the trusted root does not list"
        )
    issued = _sct_time(sct)
    if not log.validity.contains(issued):
        raise SignatureVerificationError(
            "sct", f"SCT time {issued.isoformat()} is outside the validity of CT log {log.url}"
        )
    if sct.entry_type is not LogEntryType.PRE_CERTIFICATE:
        raise SignatureVerificationError("sct", "embedded SCT is not for a precertificate entry")
    # RFC 6962 §3.2 digitally-signed struct: version, signature type 0 (certificate_timestamp),
    # timestamp in ms, entry type 1 (precert_entry), issuer key hash, the TBS as a 24-bit
    # length-prefixed opaque, then the 16-bit length-prefixed SCT extensions.
    milliseconds = (issued - _EPOCH) // timedelta(milliseconds=1)
    signed = (
        struct.pack("!BBQH", sct.version.value, 0, milliseconds, 1)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack("!H", len(sct.extension_bytes))
        + sct.extension_bytes
    )
    key = log.public_key
    hash_algorithm = sct.signature_hash_algorithm
    if not isinstance(hash_algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        raise SignatureVerificationError(
            "sct", f"unsupported SCT hash algorithm {getattr(hash_algorithm, 'name', None)}"
        )
    try:
        if sct.signature_algorithm is SignatureAlgorithm.ECDSA and isinstance(
            key, ec.EllipticCurvePublicKey
        ):
            key.verify(sct.signature, signed, ec.ECDSA(hash_algorithm))
        elif sct.signature_algorithm is SignatureAlgorithm.RSA and isinstance(
            key, rsa.RSAPublicKey
        ):
            key.verify(sct.signature, signed, padding.PKCS1v15(), hash_algorithm)
        else:
            raise SignatureVerificationError(
                "sct",
                f"SCT algorithm {sct.signature_algorithm.name} does not fit the key of "
                f"CT log {log.url}",
            )
    except InvalidSignature as exc:
        raise SignatureVerificationError(
            "sct", f"SCT signature does not verify with CT log {log.url}"
        ) from exc
    logger.debug("SCT from CT log %s verified", log.url)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sct_time(sct: SignedCertificateTimestamp) -> datetime:
    moment = sct.timestamp
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject


def _is_precertificate_signer(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return PRECERTIFICATE_SIGNING_OID in usage


def _extension_bytes(certificate: x509.Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        extension = certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value
    raise SignatureVerificationError("identity", f"extension {oid.dotted_string} is not raw bytes")


def _der_utf8_string(data: bytes, what: str) -> str:
    """Decode a DER UTF8String with a definite length of up to 65535 bytes."""
    if len(data) < 2 or data[0] != _UTF8_STRING_TAG:
        raise SignatureVerificationError("identity", f"{what} is not a DER UTF8String")
    length = data[1]
    offset = 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(data) < 2 + count:
            raise SignatureVerificationError("identity", f"{what} has an invalid DER length")
        length = int.from_bytes(data[2 : 2 + count], "big")
        offset = 2 + count
    if offset + length != len(data):
        raise SignatureVerificationError("identity", f"{what} has an invalid DER length")
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureVerificationError("identity", f"{what} is not UTF-8") from exc
