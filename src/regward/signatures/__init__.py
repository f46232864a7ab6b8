"""Image signature verification: cosign key-based `.sig` signatures.

`verify_layer` checks one signature layer against one `KeyAuthority` without I/O.
`check_authorities` fetches an image's signatures from a registry and checks them against every
authority. `sign_image` writes cosign-compatible signatures for tests and demonstrations.
"""

from __future__ import annotations

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
from regward.signatures.keys import PublicKey, key_id, load_public_key, verify_raw
from regward.signatures.sign import (
    KEY_KINDS,
    generate_keypair,
    make_payload,
    sign_image,
    sign_payload,
)

__all__ = [
    "BUNDLE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "COSIGN_SIGNATURE_ARTIFACT_TYPE",
    "COSIGN_SIGNATURE_TYPE",
    "KEY_KINDS",
    "MAX_BUNDLE_ANNOTATION_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_REFERRER_MANIFESTS",
    "MAX_SIGNATURE_LAYERS",
    "RFC3161_TIMESTAMP_ANNOTATION",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "TLOG_OPTIONAL",
    "TLOG_REQUIRED",
    "AuthorityResult",
    "EvidenceStatus",
    "InvalidAuthorityError",
    "InvalidKeyError",
    "KeyAuthority",
    "PublicKey",
    "RekorBundle",
    "SignatureError",
    "SignatureLayer",
    "SignatureVerificationError",
    "VerifiedSignature",
    "check_authorities",
    "generate_keypair",
    "is_accessory_tag",
    "key_id",
    "load_public_key",
    "make_payload",
    "parse_rekor_bundle",
    "sign_image",
    "sign_payload",
    "signature_tag",
    "verify_layer",
    "verify_raw",
    "verify_rekor_body",
    "verify_set",
]
