"""A private Sigstore for tests: Fulcio-style CA, CT log, Rekor log and a trusted_root.json.

Nothing here talks to a real Sigstore service. `PrivateSigstore` issues short-lived signing
certificates with an embedded SCT, logs entries with a signed entry timestamp (SET) and, for
bundles, a one-entry Merkle tree with a signed checkpoint, so both regward's own keyless code
and `sigstore.verify.Verifier` accept its output. It writes:

- cosign's tag-based keyless signatures (`sha256-<hex>.sig` layers with certificate, chain and
  Rekor bundle annotations) and `.att` DSSE attestations, keyless or with a key;
- Sigstore v0.3 bundles (DSSE, as cosign v3 writes them) pushed as OCI 1.1 referrers, with the
  `sha256-<hex>` referrers tag schema index that registries without the referrers API need;
- BuildKit-style image indexes with unsigned attestation manifests.

The entry formats follow Rekor's `hashedrekord` 0.0.1, `intoto` 0.0.2 and `dsse` 0.0.1 types
and RFC 6962 for the SCT; every byte is produced here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from regward.signatures.dsse import pae
from regward.signatures.sign import make_payload, sign_payload
from tests.support.images import OCI_INDEX, OCI_MANIFEST, PushedImage, put_manifest, upload_blob

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
USERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def der_utf8(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Identity:
    """Who a certificate is issued to."""

    subject: str
    issuer: str = GITHUB_ISSUER
    kind: str = "uri"
    """`uri`, `email` or `username` (the Fulcio OtherName)."""
    issuer_extensions: str = "v2"
    """`v2` (1.3.6.1.4.1.57264.1.8), `v1` (.1.1), `both`, or `mismatch` (both, different)."""


@dataclass
class Signed:
    """A certificate and key issued for one signature, with the time used for the log entry."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain_pem: str
    integrated_time: int

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class LogEntry:
    """A Rekor entry with its signed entry timestamp."""

    body: bytes
    integrated_time: int
    log_index: int
    log_id: str
    set_signature: bytes

    def cosign_bundle(self) -> str:
        """Return the `dev.sigstore.cosign/bundle` annotation value."""
        return json.dumps(
            {
                "SignedEntryTimestamp": b64(self.set_signature),
                "Payload": {
                    "body": b64(self.body),
                    "integratedTime": self.integrated_time,
                    "logIndex": self.log_index,
                    "logID": self.log_id,
                },
            },
            separators=(",", ":"),
        )


@dataclass
class PrivateSigstore:
    """A Fulcio-style CA (root and intermediate), a CT log key and a Rekor key."""

    name: str = "regward-test"
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rekor_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    start: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    )
    next_index: int = 0

    def __post_init__(self) -> None:
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name}-root"),
            ]
        )
        intermediate_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name}-intermediate"),
            ]
        )
        end = self.start + timedelta(days=3650)
        ca_usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(intermediate_name)
            .issuer_name(root_name)
            .public_key(self.intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_usage, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.intermediate_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA384())
        )

    # -- trust material -------------------------------------------------------------------

    @property
    def rekor_log_id(self) -> str:
        return sha256_hex(spki_der(self.rekor_key.public_key()))

    @property
    def ct_log_id(self) -> bytes:
        return hashlib.sha256(spki_der(self.ct_key.public_key())).digest()

    @property
    def chain_pem(self) -> str:
        """The `dev.sigstore.cosign/chain` value: intermediate, then root."""
        return "".join(
            certificate.public_bytes(serialization.Encoding.PEM).decode()
            for certificate in (self.intermediate, self.root)
        )

    def trusted_root(self, *, with_ct_log: bool = True) -> dict[str, Any]:
        """Return the trusted_root.json document for this instance."""
        start = _rfc3339(self.start)
        document: dict[str, Any] = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": "https://rekor.regward.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": b64(spki_der(self.rekor_key.public_key())),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": {"start": start},
                    },
                    "logId": {"keyId": b64(bytes.fromhex(self.rekor_log_id))},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"organization": self.name, "commonName": f"{self.name}-root"},
                    "uri": "https://fulcio.regward.test",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": b64(
                                    self.intermediate.public_bytes(serialization.Encoding.DER)
                                )
                            },
                            {"rawBytes": b64(self.root.public_bytes(serialization.Encoding.DER))},
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [],
            "timestampAuthorities": [],
        }
        if with_ct_log:
            document["ctlogs"].append(
                {
                    "baseUrl": "https://ctfe.regward.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": b64(spki_der(self.ct_key.public_key())),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": {"start": start},
                    },
                    "logId": {"keyId": b64(self.ct_log_id)},
                }
            )
        return document

    def write_trusted_root(self, path: Path, *, with_ct_log: bool = True) -> Path:
        path.write_text(json.dumps(self.trusted_root(with_ct_log=with_ct_log), indent=2))
        return path

    # -- certificates ---------------------------------------------------------------------

    def issue(
        self,
        identity: Identity,
        *,
        not_before: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=10),
        integrated_time: datetime | None = None,
        sct: bool = True,
        code_signing: bool = True,
    ) -> Signed:
        """Issue a Fulcio-style leaf certificate with an embedded SCT for a fresh key."""
        key = ec.generate_private_key(ec.SECP256R1())
        begin = not_before or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        if identity.kind == "email":
            san: x509.GeneralName = x509.RFC822Name(identity.subject)
        elif identity.kind == "uri":
            san = x509.UniformResourceIdentifier(identity.subject)
        else:
            san = x509.OtherName(USERNAME_OID, der_utf8(identity.subject))
        usages = [
            ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.CLIENT_AUTH
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(begin)
            .not_valid_after(begin + lifetime)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
        )
        issuer_v2 = identity.issuer
        if identity.issuer_extensions in ("v1", "both", "mismatch"):
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V1_OID, identity.issuer.encode()), critical=False
            )
            if identity.issuer_extensions == "mismatch":
                issuer_v2 = "https://attacker.example"
        if identity.issuer_extensions in ("v2", "both", "mismatch"):
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V2_OID, der_utf8(issuer_v2)), critical=False
            )
        if sct:
            precertificate = builder.sign(self.intermediate_key, hashes.SHA384())
            extension = self._sct_extension(precertificate.tbs_certificate_bytes, begin)
            builder = builder.add_extension(extension, critical=False)
        certificate = builder.sign(self.intermediate_key, hashes.SHA384())
        if sct:
            assert certificate.tbs_precertificate_bytes == precertificate.tbs_certificate_bytes
        moment = integrated_time or begin + timedelta(seconds=30)
        return Signed(key, certificate, self.chain_pem, int(moment.timestamp()))

    def _sct_extension(self, tbs: bytes, moment: datetime) -> x509.UnrecognizedExtension:
        """RFC 6962 §3.2: the CT log signs the precertificate TBS and the issuer key hash."""
        milliseconds = int(moment.timestamp()) * 1000
        issuer_key_hash = hashlib.sha256(spki_der(self.intermediate_key.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, milliseconds, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            struct.pack("!B32sQH", 0, self.ct_log_id, milliseconds, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )
        listing = struct.pack("!HH", len(sct) + 2, len(sct)) + sct
        value = b"\x04" + _der_length(len(listing)) + listing
        return x509.UnrecognizedExtension(SCT_LIST_OID, value)

    # -- transparency log -----------------------------------------------------------------

    def log(self, body: dict[str, Any], integrated_time: int) -> LogEntry:
        """Log an entry body and sign its entry timestamp."""
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        index = self.next_index
        self.next_index += 1
        payload = {
            "body": b64(raw),
            "integratedTime": integrated_time,
            "logID": self.rekor_log_id,
            "logIndex": index,
        }
        signature = self.rekor_key.sign(rfc8785.dumps(payload), ec.ECDSA(hashes.SHA256()))
        return LogEntry(raw, integrated_time, index, self.rekor_log_id, signature)

    def checkpoint(self, root_hash: bytes, tree_size: int) -> str:
        """A signed note over a checkpoint, as Rekor writes them."""
        origin = f"rekor.regward.test - {int(self.rekor_log_id[:8], 16)}"
        note = f"{origin}\n{tree_size}\n{b64(root_hash)}\n"
        signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        hint = bytes.fromhex(self.rekor_log_id)[:4]
        return f"{note}\n\u2014 rekor.regward.test {b64(hint + signature)}\n"


# -- entry bodies -----------------------------------------------------------------------


def hashedrekord(payload: bytes, signature: bytes, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": sha256_hex(payload)}},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(signer_pem)}},
        },
    }


def intoto_entry(envelope: dict[str, Any], statement: bytes, signer_pem: bytes) -> dict[str, Any]:
    """An intoto 0.0.2 body; the envelope signature is base64-encoded a second time."""
    logged = {
        "payloadType": envelope["payloadType"],
        "signatures": [
            {"sig": b64(envelope["signatures"][0]["sig"].encode()), "publicKey": b64(signer_pem)}
        ],
    }
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": logged,
                "hash": {
                    "algorithm": "sha256",
                    "value": sha256_hex(json.dumps(envelope, separators=(",", ":")).encode()),
                },
                "payloadHash": {"algorithm": "sha256", "value": sha256_hex(statement)},
            }
        },
    }


def dsse_entry(envelope: dict[str, Any], statement: bytes, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": sha256_hex(json.dumps(envelope, separators=(",", ":")).encode()),
            },
            "payloadHash": {"algorithm": "sha256", "value": sha256_hex(statement)},
            "signatures": [
                {"signature": envelope["signatures"][0]["sig"], "verifier": b64(signer_pem)}
            ],
        },
    }


# -- statements and envelopes -----------------------------------------------------------


def statement(
    digest: str,
    predicate_type: str,
    predicate: dict[str, Any] | None = None,
    *,
    version: str = "v1",
    name: str = "",
) -> bytes:
    """An in-toto statement about `digest` (`sha256:<hex>`)."""
    statement_type = (
        "https://in-toto.io/Statement/v1"
        if version == "v1"
        else "https://in-toto.io/Statement/v0.1"
    )
    subject: dict[str, Any] = {"digest": {"sha256": digest.removeprefix("sha256:")}}
    if name or version != "v1":
        subject = {"name": name, **subject}
    return json.dumps(
        {
            "_type": statement_type,
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": predicate if predicate is not None else {},
        },
        separators=(",", ":"),
    ).encode()


def envelope_for(payload: bytes, key: ec.EllipticCurvePrivateKey | bytes) -> dict[str, Any]:
    """A DSSE envelope with one signature over the PAE, by an EC key or a PEM private key."""
    encoded = pae(IN_TOTO, payload)
    if isinstance(key, bytes):
        signature = sign_payload(key, encoded)
    else:
        signature = key.sign(encoded, ec.ECDSA(hashes.SHA256()))
    return {
        "payloadType": IN_TOTO,
        "payload": b64(payload),
        "signatures": [{"keyid": "", "sig": b64(signature)}],
    }


def provenance_v1(builder_id: str, repository: str) -> dict[str, Any]:
    """A SLSA v1 provenance predicate as GitHub Actions builders write it."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/heads/main",
                    "repository": repository,
                    "path": ".github/workflows/build.yml",
                }
            },
            "resolvedDependencies": [{"uri": f"git+{repository}@refs/heads/main"}],
        },
        "runDetails": {"builder": {"id": builder_id}, "metadata": {}},
    }


def provenance_v02(builder_id: str, repository: str) -> dict[str, Any]:
    return {
        "builder": {"id": builder_id},
        "buildType": "https://mobyproject.org/buildkit@v1",
        "invocation": {"configSource": {"uri": f"{repository}.git#refs/heads/main"}},
        "materials": [{"uri": f"git+{repository}@refs/heads/main"}],
    }


def spdx_document(name: str = "app") -> dict[str, Any]:
    return {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "dataLicense": "CC0-1.0",
        "packages": [{"SPDXID": "SPDXRef-pkg", "name": "busybox", "versionInfo": "1.36.1"}],
    }


def vuln_predicate(finished: datetime) -> dict[str, Any]:
    return {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.59.1", "version": "0.59.1"},
        "metadata": {
            "scanStartedOn": _rfc3339(finished - timedelta(minutes=1)),
            "scanFinishedOn": finished.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        },
    }


# -- artifacts --------------------------------------------------------------------------


def keyless_signature_layer(
    sigstore: PrivateSigstore,
    identity: Identity,
    docker_reference: str,
    digest: str,
    **issue: Any,
) -> tuple[bytes, dict[str, str]]:
    """Return (payload, annotations) of one keyless `.sig` layer for `digest`."""
    signed = sigstore.issue(identity, **issue)
    payload = make_payload(docker_reference, digest)
    signature = signed.key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = sigstore.log(
        hashedrekord(payload, signature, signed.certificate_pem.encode()), signed.integrated_time
    )
    return payload, {
        "dev.cosignproject.cosign/signature": b64(signature),
        "dev.sigstore.cosign/certificate": signed.certificate_pem,
        "dev.sigstore.cosign/chain": signed.chain_pem,
        "dev.sigstore.cosign/bundle": entry.cosign_bundle(),
    }


def keyless_attestation_layer(
    sigstore: PrivateSigstore, identity: Identity, payload: bytes, predicate_type: str, **issue: Any
) -> tuple[bytes, dict[str, str]]:
    """Return (envelope bytes, annotations) of one keyless `.att` layer."""
    signed = sigstore.issue(identity, **issue)
    envelope = envelope_for(payload, signed.key)
    entry = sigstore.log(
        intoto_entry(envelope, payload, signed.certificate_pem.encode()), signed.integrated_time
    )
    return json.dumps(envelope).encode(), {
        "dev.cosignproject.cosign/signature": "",
        "dev.sigstore.cosign/certificate": signed.certificate_pem,
        "dev.sigstore.cosign/chain": signed.chain_pem,
        "dev.sigstore.cosign/bundle": entry.cosign_bundle(),
        "predicateType": predicate_type,
    }


def key_attestation_layer(
    private_key_pem: bytes,
    payload: bytes,
    predicate_type: str,
    *,
    rekor: PrivateSigstore | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Return (envelope bytes, annotations) of one key-based `.att` layer."""
    envelope = envelope_for(payload, private_key_pem)
    annotations = {"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type}
    if rekor is not None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        entry = rekor.log(
            intoto_entry(envelope, payload, public), int(datetime.now(UTC).timestamp())
        )
        annotations["dev.sigstore.cosign/bundle"] = entry.cosign_bundle()
    return json.dumps(envelope).encode(), annotations


def keyless_bundle(
    sigstore: PrivateSigstore, identity: Identity, payload: bytes, **issue: Any
) -> bytes:
    """A v0.3 DSSE bundle over `payload` (an in-toto statement), as cosign v3 writes it."""
    signed = sigstore.issue(identity, **issue)
    envelope = envelope_for(payload, signed.key)
    entry = sigstore.log(
        dsse_entry(envelope, payload, signed.certificate_pem.encode()), signed.integrated_time
    )
    leaf_hash = hashlib.sha256(b"\x00" + entry.body).digest()
    document = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {
                "rawBytes": b64(signed.certificate.public_bytes(serialization.Encoding.DER))
            },
            "tlogEntries": [
                {
                    "logIndex": str(entry.log_index),
                    "logId": {"keyId": b64(bytes.fromhex(entry.log_id))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(entry.integrated_time),
                    "inclusionPromise": {"signedEntryTimestamp": b64(entry.set_signature)},
                    "inclusionProof": {
                        "logIndex": "0",
                        "rootHash": b64(leaf_hash),
                        "treeSize": "1",
                        "hashes": [],
                        "checkpoint": {"envelope": sigstore.checkpoint(leaf_hash, 1)},
                    },
                    "canonicalizedBody": b64(entry.body),
                }
            ],
        },
        "dsseEnvelope": envelope,
    }
    return json.dumps(document).encode()


# -- pushing ----------------------------------------------------------------------------


def _get_json(
    registry_url: str, repository: str, reference: str, accept: str
) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"{registry_url}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def push_layers(
    registry_url: str,
    repository: str,
    tag: str,
    layers: list[tuple[bytes, dict[str, str]]],
    media_type: str,
) -> str:
    """Append layers to the manifest under `tag` (cosign's `.sig`/`.att` form) and push it."""
    existing = _get_json(registry_url, repository, tag, OCI_MANIFEST)
    descriptors: list[dict[str, Any]] = list(existing["layers"]) if existing else []
    for blob, layer_annotations in layers:
        digest = upload_blob(registry_url, repository, blob)
        descriptors.append(
            {
                "mediaType": media_type,
                "size": len(blob),
                "digest": digest,
                "annotations": layer_annotations,
            }
        )
    config = json.dumps(
        {
            "architecture": "",
            "config": {},
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [item["digest"] for item in descriptors]},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = upload_blob(registry_url, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": descriptors,
        },
        separators=(",", ":"),
    ).encode()
    return put_manifest(registry_url, repository, tag, manifest, OCI_MANIFEST)


def tag_for(digest: str, suffix: str) -> str:
    return digest.replace(":", "-") + (f".{suffix}" if suffix else "")


def push_bundle_referrer(
    registry_url: str,
    repository: str,
    subject: PushedImage,
    bundle: bytes,
    *,
    predicate_type: str,
    index_artifact_type: bool = True,
    subject_digest: str | None = None,
    annotate: bool = True,
) -> str:
    """Push a bundle as an OCI 1.1 referrer of `subject` and list it in the referrers tag index.

    `index_artifact_type=False` writes the index entry without `artifactType`, as
    go-containerregistry before v0.22.1 did. `subject_digest` overrides the manifest's subject.
    `annotate=False` leaves out cosign's manifest annotations, predicate type included.
    """
    upload_blob(registry_url, repository, b"{}")
    bundle_digest = upload_blob(registry_url, repository, bundle)
    manifest_body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": "sha256:" + sha256_hex(b"{}")},
        "layers": [{"mediaType": BUNDLE_V03, "size": len(bundle), "digest": bundle_digest}],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "size": len(subject.manifest),
            "digest": subject_digest or subject.digest,
        },
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate_type,
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        },
    }
    if not annotate:
        del manifest_body["annotations"]
    manifest = json.dumps(manifest_body, separators=(",", ":")).encode()
    manifest_digest = "sha256:" + sha256_hex(manifest)
    put_manifest(registry_url, repository, manifest_digest, manifest, OCI_MANIFEST)

    entry: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "size": len(manifest),
        "digest": manifest_digest,
    }
    if index_artifact_type:
        entry["artifactType"] = BUNDLE_V03
        if annotate:
            entry["annotations"] = manifest_body["annotations"]
    add_to_referrers_index(registry_url, repository, subject.digest, entry)
    return manifest_digest


def add_to_referrers_index(
    registry_url: str, repository: str, digest: str, entry: dict[str, Any]
) -> None:
    """Add a descriptor to the `sha256-<hex>` referrers tag schema index of `digest`."""
    tag = tag_for(digest, "")
    index = _get_json(registry_url, repository, tag, OCI_INDEX) or {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
    }
    index["manifests"].append(entry)
    put_manifest(
        registry_url, repository, tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX
    )


def push_buildkit_index(
    registry_url: str,
    repository: str,
    tag: str,
    image: PushedImage,
    statements: list[tuple[str, bytes]],
) -> tuple[str, bytes]:
    """Push an index with `image` and a BuildKit attestation manifest of unsigned statements.

    `statements` are (predicate type, statement bytes) pairs.
    """
    layers = []
    for predicate_type, payload in statements:
        digest = upload_blob(registry_url, repository, payload)
        layers.append(
            {
                "mediaType": IN_TOTO,
                "size": len(payload),
                "digest": digest,
                "annotations": {"in-toto.io/predicate-type": predicate_type},
            }
        )
    config = b'{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = upload_blob(registry_url, repository, config)
    attestation = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    attestation_digest = put_manifest(
        registry_url, repository, "sha256:" + sha256_hex(attestation), attestation, OCI_MANIFEST
    )
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": attestation_digest,
                    "size": len(attestation),
                    "annotations": {
                        "vnd.docker.reference.digest": image.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                    "platform": {"architecture": "unknown", "os": "unknown"},
                },
            ],
        },
        separators=(",", ":"),
    ).encode()
    digest = put_manifest(registry_url, repository, tag, index, OCI_INDEX)
    return digest, index


def ec_private_pem() -> tuple[bytes, bytes]:
    """A fresh P-256 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return private_pem(key), public_pem(key)
