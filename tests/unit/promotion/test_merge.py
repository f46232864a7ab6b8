"""Merging referrers fallback indexes and cosign signature manifests, without a registry."""

from __future__ import annotations

import json

import pytest

from regward.oci.manifest import Descriptor
from regward.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from regward.promotion import CopyError, merge_referrers_index, merge_signature_manifests

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64


def descriptor(digest: str, artifact_type: str | None = "application/example") -> Descriptor:
    return Descriptor(
        media_type=OCI_MANIFEST,
        digest=digest,  # type: ignore[arg-type]
        size=10,
        artifact_type=artifact_type,
        annotations={"k": "v"},
    )


def index(*entries: dict[str, object], **extra: object) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries), **extra}
    ).encode()


def signature_manifest(*layers: tuple[str, str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": DIGEST_C, "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": digest,
                    "size": 5,
                    "annotations": {"dev.cosignproject.cosign/signature": signature},
                }
                for digest, signature in layers
            ],
        }
    ).encode()


def test_referrers_index_created_when_missing() -> None:
    merged = merge_referrers_index(None, [descriptor(DIGEST_A)])

    assert merged is not None
    document = json.loads(merged)
    assert document["mediaType"] == OCI_INDEX
    assert document["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": DIGEST_A,
            "size": 10,
            "artifactType": "application/example",
            "annotations": {"k": "v"},
        }
    ]


def test_referrers_index_keeps_existing_entries() -> None:
    existing = index({"digest": DIGEST_B, "mediaType": OCI_MANIFEST, "size": 3, "x-extra": 1})

    merged = merge_referrers_index(existing, [descriptor(DIGEST_A), descriptor(DIGEST_B)])

    assert merged is not None
    entries = json.loads(merged)["manifests"]
    assert [entry["digest"] for entry in entries] == [DIGEST_B, DIGEST_A]
    assert entries[0]["x-extra"] == 1


def test_referrers_index_unchanged_returns_none() -> None:
    existing = index({"digest": DIGEST_A, "mediaType": OCI_MANIFEST, "size": 10})

    assert merge_referrers_index(existing, [descriptor(DIGEST_A)]) is None


def test_referrers_index_replaces_invalid_tag() -> None:
    merged = merge_referrers_index(b'{"mediaType": "text/plain"}', [descriptor(DIGEST_A, None)])

    assert merged is not None
    entries = json.loads(merged)["manifests"]
    assert entries == [
        {"mediaType": OCI_MANIFEST, "digest": DIGEST_A, "size": 10, "annotations": {"k": "v"}}
    ]


def test_signature_layers_appended() -> None:
    existing = signature_manifest((DIGEST_A, "sig-1"))
    incoming = signature_manifest((DIGEST_A, "sig-1"), (DIGEST_A, "sig-2"), (DIGEST_B, "sig-3"))

    merged = merge_signature_manifests(existing, incoming)

    assert merged is not None
    manifest, config = merged
    layers = json.loads(manifest)["layers"]
    assert [layer["annotations"]["dev.cosignproject.cosign/signature"] for layer in layers] == [
        "sig-1",
        "sig-2",
        "sig-3",
    ]
    assert json.loads(config)["rootfs"]["diff_ids"] == [DIGEST_A, DIGEST_A, DIGEST_B]


def test_signature_layers_subset_returns_none() -> None:
    existing = signature_manifest((DIGEST_A, "sig-1"), (DIGEST_B, "sig-2"))

    assert merge_signature_manifests(existing, signature_manifest((DIGEST_B, "sig-2"))) is None


def test_signature_manifest_without_layers_rejected() -> None:
    with pytest.raises(CopyError, match="no valid layers list"):
        merge_signature_manifests(b'{"layers": "none"}', signature_manifest((DIGEST_A, "s")))
