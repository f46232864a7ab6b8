"""Image signature and attestation verification: cosign and Sigstore formats.

Authorities are a public key (`KeyAuthority`) or a Fulcio identity checked against a Sigstore
trust root (`KeylessAuthority`, `TrustRoot`). `verify_layer` and `verify_keyless_layer` check one
cosign `.sig` layer, `verify_bundle` one Sigstore bundle and `verify_attestation_layer` one
`.att` DSSE layer, all without I/O. `check_authorities` fetches an image's signatures (tag-based
and referrers) and `check_attestations` its attestations, and check them against every authority
or requirement. `sign_image` writes cosign-compatible key-based signatures for tests and
demonstrations.
"""

from __future__ import annotations

from regward.signatures.attestations import (
    AttestationRequirement,
    AttestationResult,
    AttestationSource,
    VerifiedStatement,
    assess_attestations,
    verify_attestation_layer,
)
from regward.signatures.bundles import (
    BUNDLE_MEDIA_TYPES,
    Authority,
    BundleContent,
    VerifiedBundle,
    is_bundle_media_type,
    verify_bundle,
)
from regward.signatures.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    COSIGN_SIGNATURE_ARTIFACT_TYPE,
    COSIGN_SIGNATURE_TYPE,
    MAX_BUNDLE_ANNOTATION_SIZE,
    MAX_PAYLOAD_SIZE,
    RFC3161_TIMESTAMP_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    TLOG_OPTIONAL,
    TLOG_REQUIRED,
    KeyAuthority,
    RekorBundle,
    SignatureLayer,
    VerifiedSignature,
    is_accessory_tag,
    parse_rekor_bundle,
    signature_tag,
    verify_layer,
    verify_rekor_body,
    verify_set,
)
from regward.signatures.dsse import (
    COSIGN_SIGN_PREDICATE_TYPE,
    DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    Statement,
    normalize_predicate_type,
    pae,
    parse_envelope,
    parse_statement,
)
from regward.signatures.errors import (
    InvalidAuthorityError,
    InvalidKeyError,
    SignatureError,
    SignatureVerificationError,
)
from regward.signatures.fetch import (
    MAX_REFERRER_MANIFESTS,
    MAX_SIGNATURE_LAYERS,
    AuthorityResult,
    EvidenceStatus,
    check_authorities,
)
from regward.signatures.fetch_attestations import check_attestations
from regward.signatures.fulcio import CertificateIdentity, IdentityPolicy, certificate_identity
from regward.signatures.keyless import KeylessAuthority, verify_keyless_layer
from regward.signatures.keys import PublicKey, key_id, load_public_key, verify_raw
from regward.signatures.predicates import (
    COSIGN_VULN,
    CYCLONEDX_BOM,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    SPDX_DOCUMENT,
    PredicateError,
    Provenance,
    check_scan_age,
    normalize_repository_uri,
    read_provenance,
    read_scan_finished,
    sbom_format,
)
from regward.signatures.sign import (
    KEY_KINDS,
    generate_keypair,
    make_payload,
    sign_image,
    sign_payload,
)
from regward.signatures.trust import PUBLIC_GOOD, STAGING, TrustRoot, TrustRootError

__all__ = [
    "BUNDLE_ANNOTATION",
    "BUNDLE_MEDIA_TYPES",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "COSIGN_SIGNATURE_ARTIFACT_TYPE",
    "COSIGN_SIGNATURE_TYPE",
    "COSIGN_SIGN_PREDICATE_TYPE",
    "COSIGN_VULN",
    "CYCLONEDX_BOM",
    "DSSE_ENVELOPE_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "KEY_KINDS",
    "MAX_BUNDLE_ANNOTATION_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_REFERRER_MANIFESTS",
    "MAX_SIGNATURE_LAYERS",
    "PUBLIC_GOOD",
    "RFC3161_TIMESTAMP_ANNOTATION",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "SLSA_PROVENANCE_V02",
    "SLSA_PROVENANCE_V1",
    "SPDX_DOCUMENT",
    "STAGING",
    "TLOG_OPTIONAL",
    "TLOG_REQUIRED",
    "AttestationRequirement",
    "AttestationResult",
    "AttestationSource",
    "Authority",
    "AuthorityResult",
    "BundleContent",
    "CertificateIdentity",
    "Envelope",
    "EvidenceStatus",
    "IdentityPolicy",
    "InvalidAuthorityError",
    "InvalidKeyError",
    "KeyAuthority",
    "KeylessAuthority",
    "PredicateError",
    "Provenance",
    "PublicKey",
    "RekorBundle",
    "SignatureError",
    "SignatureLayer",
    "SignatureVerificationError",
    "Statement",
    "TrustRoot",
    "TrustRootError",
    "VerifiedBundle",
    "VerifiedSignature",
    "VerifiedStatement",
    "assess_attestations",
    "certificate_identity",
    "check_attestations",
    "check_authorities",
    "check_scan_age",
    "generate_keypair",
    "is_accessory_tag",
    "is_bundle_media_type",
    "key_id",
    "load_public_key",
    "make_payload",
    "normalize_predicate_type",
    "normalize_repository_uri",
    "pae",
    "parse_envelope",
    "parse_rekor_bundle",
    "parse_statement",
    "read_provenance",
    "read_scan_finished",
    "sbom_format",
    "sign_image",
    "sign_payload",
    "signature_tag",
    "verify_attestation_layer",
    "verify_bundle",
    "verify_keyless_layer",
    "verify_layer",
    "verify_raw",
    "verify_rekor_body",
    "verify_set",
]
