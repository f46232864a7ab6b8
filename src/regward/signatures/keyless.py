"""Keyless verification of cosign's tag-based signatures (Fulcio certificate plus Rekor SET).

A keyless `.sig` layer carries the signing certificate (`dev.sigstore.cosign/certificate`), the
intermediates (`dev.sigstore.cosign/chain`) and a Rekor bundle (`dev.sigstore.cosign/bundle`).
The certificate is valid for minutes, so the verified Rekor `integratedTime` is the moment at
which the certificate and its chain must be valid. Without a verified SET there is no trusted
time, and the signature is rejected.

Pure: no I/O. `regward.signatures.fetch` fetches the layers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from regward.signatures.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SignatureLayer,
    VerifiedSignature,
    decode_signature_annotation,
    layer_payload_digest,
    parse_rekor_bundle,
    parse_simple_signing,
)
from regward.signatures.errors import InvalidAuthorityError, SignatureVerificationError
from regward.signatures.fulcio import (
    CertificateIdentity,
    IdentityPolicy,
    certificate_identity,
    load_certificate,
    load_chain,
    verify_certificate_path,
    verify_embedded_sct,
)
from regward.signatures.keys import MIN_RSA_BITS, PublicKey, verify_raw
from regward.signatures.tlog import SignedMaterial, verify_entry_binding, verify_set_with_root
from regward.signatures.trust import TrustRoot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeylessAuthority:
    """A Fulcio identity whose keyless signatures satisfy a rule.

    Set exactly one of `issuer` and `issuer_regexp` and exactly one of `subject` and
    `subject_regexp`. Regular expressions must match the whole value, which is stricter than
    cosign's unanchored matching (see `regward.signatures.fulcio`).

    Raises:
        InvalidAuthorityError: the identity settings are incomplete or a pattern is invalid.
    """

    name: str
    """Name used in results and messages, e.g. `gha`."""
    trusted_root: TrustRoot
    """The Fulcio CAs, Rekor keys and CT log keys to trust."""
    issuer: str | None = None
    """The exact OIDC issuer, e.g. `https://token.actions.githubusercontent.com`."""
    issuer_regexp: str | None = None
    """A pattern the whole OIDC issuer must match."""
    subject: str | None = None
    """The exact certificate subject (email, URI or username)."""
    subject_regexp: str | None = None
    """A pattern one whole subject alternative name must match."""
    signature_repository: str | None = None
    """Repository holding the signatures when it is not the image's (cosign's COSIGN_REPOSITORY):
    `repo` on the image's registry or `host/repo` on another one."""
    ignore_sct: bool = False
    """Skip the embedded SCT check (cosign `--insecure-ignore-sct`), for trust roots without
    CT logs. Certificates are then trusted without proof that they were publicly logged."""
    identity: IdentityPolicy = field(init=False, repr=False, compare=False)
    """The compiled identity policy."""

    def __post_init__(self) -> None:
        """Compile the identity policy."""
        try:
            policy = IdentityPolicy(
                issuer=self.issuer,
                issuer_regexp=self.issuer_regexp,
                subject=self.subject,
                subject_regexp=self.subject_regexp,
            )
        except InvalidAuthorityError as exc:
            raise InvalidAuthorityError(f"authority {self.name!r}: {exc}") from exc
        object.__setattr__(self, "identity", policy)


@dataclass(frozen=True)
class VerifiedCertificate:
    """A signing certificate that chains to a trusted Fulcio CA and has the required identity."""

    certificate: x509.Certificate
    """The leaf certificate."""
    public_key: PublicKey
    """The leaf's public key."""
    identity: CertificateIdentity
    """The certificate's subject alternative names and issuer."""
    signed_at: datetime
    """The verified time of signing: the Rekor integrated time or a timestamp."""


def signing_key(certificate: x509.Certificate) -> PublicKey:
    """Return the certificate's public key if cosign can sign with its type.

    Raises:
        SignatureVerificationError: an unsupported key type or a short RSA key.
    """
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise SignatureVerificationError(
        "certificate", f"signing certificate has an unsupported key type {type(key).__name__}"
    )


def verify_certificate_at(
    leaf: x509.Certificate,
    chain: list[x509.Certificate],
    moment: datetime,
    authority: KeylessAuthority,
) -> VerifiedCertificate:
    """Check a signing certificate against `authority` at the verified time `moment`.

    Steps: (1) `moment` lies within the leaf's validity; (2) the leaf chains to a Fulcio CA
    valid at `moment`, with the code-signing usage; (3) an embedded SCT verifies, unless the
    authority ignores SCTs; (4) the identity matches the authority's policy.

    Raises:
        SignatureVerificationError: a check failed; `check` names it.
    """
    # (1): a Fulcio certificate lives for minutes; the signature must fall inside them.
    if not leaf.not_valid_before_utc <= moment <= leaf.not_valid_after_utc:
        raise SignatureVerificationError(
            "certificate-validity",
            "signature time is outside the signing certificate's validity",
            got=moment.isoformat(),
            expected=(
                f"between {leaf.not_valid_before_utc.isoformat()} and "
                f"{leaf.not_valid_after_utc.isoformat()}"
            ),
        )

    # (2): path to a trusted CA.
    path = verify_certificate_path(leaf, chain, authority.trusted_root, moment)

    # (3): proof that the CA logged the certificate publicly.
    if authority.ignore_sct:
        logger.debug("authority %s ignores SCTs: certificate not checked for one", authority.name)
    else:
        verify_embedded_sct(leaf, path, authority.trusted_root)

    # (4): who the certificate was issued to.
    identity = certificate_identity(leaf)
    authority.identity.check(identity)
    return VerifiedCertificate(
        certificate=leaf, public_key=signing_key(leaf), identity=identity, signed_at=moment
    )


def verify_keyless_layer(
    layer: SignatureLayer, image_digest: str, authority: KeylessAuthority
) -> VerifiedSignature:
    """Verify one keyless cosign signature layer for `image_digest`.

    Steps, in order:
    (1) the payload hashes to the layer digest and the signature annotation decodes;
    (2) the certificate annotation contains one PEM certificate and the chain annotation PEMs;
    (3) the Rekor bundle's SET verifies with the trusted root's key for its log id, which gives
        the signing time;
    (4) the certificate was valid at that time, chains to a trusted Fulcio CA, has the
        code-signing usage, an SCT from a trusted CT log and the required identity;
    (5) the logged entry names this signature, this certificate and SHA-256 of the payload;
    (6) the signature verifies over the payload with the certificate's key;
    (7) the payload is a simple-signing document for `image_digest`.

    Raises:
        SignatureVerificationError: a check failed; `check` names it.
    """
    # (1): the layer is what the manifest names.
    layer_payload_digest(layer)
    signature = decode_signature_annotation(layer)

    # (2): certificate material; the chain is untrusted and only helps to build the path.
    certificate_pem = layer.annotations.get(CERTIFICATE_ANNOTATION)
    if not certificate_pem:
        raise SignatureVerificationError(
            "certificate", f"keyless signature layer has no {CERTIFICATE_ANNOTATION} annotation"
        )
    leaf = load_certificate(certificate_pem, "certificate annotation")
    chain = load_chain(layer.annotations.get(CHAIN_ANNOTATION))

    # (3): trusted time from the transparency log.
    bundle_text = layer.annotations.get(BUNDLE_ANNOTATION)
    if not bundle_text:
        raise SignatureVerificationError(
            "tlog-missing",
            f"keyless signature layer has no {BUNDLE_ANNOTATION} annotation, so there is no "
            "trusted signing time",
        )
    bundle = parse_rekor_bundle(bundle_text)
    moment = verify_set_with_root(bundle, authority.trusted_root)

    # (4): the certificate at that time.
    verified = verify_certificate_at(leaf, chain, moment, authority)

    # (5): the log entry is for this signature.
    verify_entry_binding(
        bundle.body,
        SignedMaterial(
            signature=signature,
            certificate=leaf,
            public_key=verified.public_key,
            payload_sha256=hashlib.sha256(layer.payload).hexdigest(),
        ),
    )

    # (6): the signature itself.
    verify_raw(verified.public_key, signature, layer.payload)

    # (7): only now is the payload read.
    docker_reference, signed_digest, optional = parse_simple_signing(layer.payload)
    if not hmac.compare_digest(signed_digest, image_digest):
        raise SignatureVerificationError(
            "image-digest",
            "signature is for another image: docker-manifest-digest does not match",
            got=signed_digest,
            expected=image_digest,
        )
    logger.debug(
        "keyless signature layer %s verified for %s by authority %s: %s",
        layer.layer_digest,
        image_digest,
        authority.name,
        verified.identity.describe(),
    )
    return VerifiedSignature(
        authority=authority.name,
        image_digest=signed_digest,
        docker_reference=docker_reference,
        payload=layer.payload,
        optional=optional,
        tlog_verified=True,
        layer_digest=layer.layer_digest,
        integrated_time=bundle.integrated_time,
        log_index=bundle.log_index,
        subject=", ".join(verified.identity.subjects),
        issuer=verified.identity.issuer,
    )
