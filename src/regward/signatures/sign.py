"""A cosign-compatible signer for key-based `.sig` signatures.

cosign itself is not available everywhere regward is tested or demonstrated, so this module
writes the same artifacts. These are a simple-signing payload, a signature with cosign's scheme
for the key type, and the `sha256-<hex>.sig` OCI manifest with one layer per signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import nacl.bindings
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from yarl import URL

from regward.oci.digest import compute_digest, parse_digest
from regward.oci.errors import InvalidDigestError, NotFoundError
from regward.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST
from regward.signatures.cosign import (
    COSIGN_SIGNATURE_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    signature_tag,
)
from regward.signatures.errors import InvalidKeyError, SignatureError
from regward.signatures.keys import CURVE_HASHES

if TYPE_CHECKING:
    from regward.oci.client import RegistryClient

logger = logging.getLogger(__name__)

KEY_KINDS = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ed25519",
)
"""Key kinds `generate_keypair` accepts; cosign's default is `ecdsa-p256`."""

_CURVES: dict[str, ec.EllipticCurve] = {
    "ecdsa-p256": ec.SECP256R1(),
    "ecdsa-p384": ec.SECP384R1(),
    "ecdsa-p521": ec.SECP521R1(),
}

# Go's encoding/json escapes these characters by default although JSON does not require it.
# Escaping them the same way keeps the payload byte-identical to cosign's (a Go program).
_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def generate_keypair(kind: str = "ecdsa-p256") -> tuple[bytes, bytes]:
    """Generate a signing key pair.

    Args:
        kind: one of `KEY_KINDS`.

    Returns:
        (private key as unencrypted PKCS#8 PEM, public key as SubjectPublicKeyInfo PEM).

    Raises:
        SignatureError: `kind` is unknown.
    """
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind in _CURVES:
        private_key = ec.generate_private_key(_CURVES[kind])
    elif kind.startswith("rsa-") and kind in KEY_KINDS:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    elif kind == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise SignatureError(f"unknown key kind: got {kind!r}, expected one of {KEY_KINDS}")
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def make_payload(
    docker_reference: str, digest: str, optional: Mapping[str, str] | None = None
) -> bytes:
    """Build the simple-signing payload cosign signs for an image digest.

    The bytes match cosign's output: compact JSON, fields in cosign's order, `optional` keys
    sorted and `"optional":null` when there are no annotations.

    Args:
        docker_reference: the repository the signature names, without tag, e.g. `host/repo`.
        digest: the image manifest digest, `sha256:<hex>`.
        optional: cosign's `-a key=value` annotations.

    Raises:
        SignatureError: `digest` is not a valid digest.
    """
    try:
        parse_digest(digest)
    except InvalidDigestError as exc:
        raise SignatureError(f"cannot build a signature payload: {exc}") from exc
    document: dict[str, Any] = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": dict(sorted(optional.items())) if optional else None,
    }
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    for character, escape in _GO_JSON_ESCAPES.items():
        text = text.replace(character, escape)
    return text.encode("utf-8")


def sign_payload(private_pem: bytes, payload: bytes, *, ed25519ph: bool = True) -> bytes:
    """Sign `payload` with the scheme cosign uses for the key type.

    ECDSA uses the curve's hash (SHA-256, SHA-384 or SHA-512) and a DER signature, RSA uses
    PKCS#1 v1.5 with SHA-256, and Ed25519 uses Ed25519ph unless `ed25519ph` is False.

    Args:
        private_pem: an unencrypted PKCS#8 (or traditional) PEM private key.
        payload: the exact bytes to sign.
        ed25519ph: for Ed25519 keys, sign with Ed25519ph (cosign's default) or pure Ed25519.

    Raises:
        InvalidKeyError: the key cannot be loaded or has an unsupported type or curve.
    """
    try:
        private_key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"private key cannot be loaded: {exc}") from exc

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        hash_type = CURVE_HASHES.get(private_key.curve.name)
        if hash_type is None:
            raise InvalidKeyError(f"unsupported ECDSA curve: {private_key.curve.name}")
        return private_key.sign(payload, ec.ECDSA(hash_type()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        if not ed25519ph:
            return private_key.sign(payload)
        seed = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        state = nacl.bindings.crypto_sign_ed25519ph_state()
        nacl.bindings.crypto_sign_ed25519ph_update(state, payload)
        # libsodium's secret key is the 32-byte seed followed by the 32-byte public key.
        return nacl.bindings.crypto_sign_ed25519ph_final_create(state, seed + public)
    raise InvalidKeyError(
        f"unsupported private key type: got {type(private_key).__name__}, "
        "expected ECDSA, RSA or Ed25519"
    )


def signature_layer_descriptor(payload: bytes, signature: bytes) -> dict[str, Any]:
    """Return the OCI descriptor of a signature layer whose blob is `payload`."""
    return {
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "size": len(payload),
        "digest": "sha256:" + hashlib.sha256(payload).hexdigest(),
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode("ascii")},
    }


def build_signature_manifest(layers: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """Build a `.sig` manifest over `layers` and its config blob.

    The config is a minimal OCI image config whose `rootfs.diff_ids` list the layer digests,
    because the layers are uncompressed and so each diff id equals the layer digest.

    Returns:
        (manifest bytes, config blob bytes).
    """
    config = json.dumps(
        {
            "architecture": "",
            "config": {},
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "size": len(config),
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            },
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    return manifest, config


async def sign_image(
    client: RegistryClient,
    repository: str,
    digest: str,
    private_key_pem: bytes,
    *,
    docker_reference: str,
    signature_repository: str | None = None,
) -> str:
    """Sign an image digest and push the signature under `sha256-<hex>.sig`, as cosign does.

    When the tag already has a signature manifest, the new signature is appended as another
    layer and the manifest is pushed again. Like cosign's, this read-modify-write is not atomic:
    two signers appending at the same moment can lose one signature.

    Args:
        client: client for the registry that receives the signature.
        repository: the image's repository.
        digest: the image manifest digest to sign.
        private_key_pem: unencrypted PEM private key (ECDSA, RSA or Ed25519).
        docker_reference: the repository the payload names, e.g. `registry.example/org/app`.
        signature_repository: a repository on the same registry to push to instead of
            `repository` (cosign's COSIGN_REPOSITORY).

    Returns:
        The digest of the signature manifest that was pushed.

    Raises:
        SignatureError: the digest or key is invalid, or the registry rejected an upload.
        OCIError: the existing signature manifest could not be read.
    """
    target = signature_repository or repository
    tag = signature_tag(digest)

    payload = make_payload(docker_reference, digest)
    layer = signature_layer_descriptor(payload, sign_payload(private_key_pem, payload))

    layers: list[dict[str, Any]] = []
    try:
        existing = await client.get_manifest(target, tag)
    except NotFoundError:
        logger.debug("no signature manifest %s:%s yet, creating one", target, tag)
    else:
        layers = _existing_layers(existing.raw, f"{target}:{tag}")
    layers.append(layer)
    manifest, config = build_signature_manifest(layers)

    await _upload_blob(client, target, payload)
    await _upload_blob(client, target, config)
    await _put_manifest(client, target, tag, manifest)
    manifest_digest = compute_digest(manifest)
    logger.debug(
        "pushed signature %s for %s to %s:%s (%d layers)",
        layer["digest"],
        digest,
        target,
        tag,
        len(layers),
    )
    return manifest_digest


def _existing_layers(raw: bytes, where: str) -> list[dict[str, Any]]:
    """Return the layer descriptors of an existing signature manifest, exactly as written."""
    document = json.loads(raw)
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list) or not all(isinstance(item, dict) for item in layers):
        raise SignatureError(f"signature manifest {where} has no valid layers list to append to")
    return layers


async def _upload_blob(client: RegistryClient, repository: str, data: bytes) -> None:
    """Upload a blob with the monolithic POST then PUT flow of the distribution API."""
    digest = compute_digest(data)
    response = await client.request("POST", f"/v2/{repository}/blobs/uploads/", data=b"")
    try:
        if response.status != 202:
            raise SignatureError(
                f"registry rejected the blob upload to {repository}: got HTTP {response.status}, "
                "expected 202"
            )
        location = response.headers.get("Location", "")
    finally:
        response.release()

    path = _same_origin_path(client, location, repository)
    response = await client.request(
        "PUT",
        path,
        headers={"Content-Type": "application/octet-stream"},
        data=data,
        params=[("digest", digest)],
    )
    try:
        if response.status != 201:
            raise SignatureError(
                f"registry rejected blob {digest} in {repository}: got HTTP {response.status}, "
                "expected 201"
            )
    finally:
        response.release()


def _same_origin_path(client: RegistryClient, location: str, repository: str) -> str:
    """Turn an upload `Location` header into a `/v2/...` path on the client's registry."""
    url = URL(location)
    if url.is_absolute():
        if url.origin() != URL(client.base_url).origin():
            # NOTE: uploads that the registry sends to another origin (e.g. object storage)
            # are not supported; no registry regward is tested with does that.
            raise SignatureError(
                f"registry sent the upload for {repository} to another origin: {url.origin()}"
            )
        url = url.relative()
    if not url.path.startswith("/v2/"):
        raise SignatureError(
            f"registry sent an invalid upload location for {repository}: {location!r}"
        )
    return str(url)


async def _put_manifest(client: RegistryClient, repository: str, tag: str, manifest: bytes) -> None:
    response = await client.request(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        headers={"Content-Type": OCI_MANIFEST},
        data=manifest,
    )
    try:
        if response.status != 201:
            raise SignatureError(
                f"registry rejected signature manifest {repository}:{tag}: got HTTP "
                f"{response.status}, expected 201"
            )
    finally:
        response.release()
