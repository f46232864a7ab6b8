"""DSSE envelopes and in-toto statements."""

from __future__ import annotations

import base64
import json

import pytest

from regward.signatures import (
    KeyAuthority,
    SignatureVerificationError,
    pae,
    parse_envelope,
    parse_statement,
)
from regward.signatures.dsse import verify_envelope
from tests.support.sigstore import ec_private_pem, envelope_for, statement

DIGEST = "sha256:" + "cd" * 32


def test_pae_follows_dsse_v1() -> None:
    # The example from the DSSE protocol description: type and body lengths in ASCII decimal.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


def test_envelope_round_trip_with_key() -> None:
    private, public = ec_private_pem()
    envelope = parse_envelope(json.dumps(envelope_for(statement(DIGEST, "x"), private)).encode())

    verify_envelope(envelope, KeyAuthority("ci", public).public_key)

    assert parse_statement(envelope.payload).names_digest(DIGEST)


def test_envelope_signature_over_other_payload_rejected() -> None:
    private, public = ec_private_pem()
    document = envelope_for(statement(DIGEST, "x"), private)
    document["payload"] = base64.b64encode(statement(DIGEST, "y")).decode()

    with pytest.raises(SignatureVerificationError, match="does not verify"):
        verify_envelope(
            parse_envelope(json.dumps(document).encode()), KeyAuthority("ci", public).public_key
        )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"payloadType": "x", "payload": "e30=", "signatures": []}, "no signatures"),
        ({"payload": "e30=", "signatures": [{"sig": "AA=="}]}, "payloadType"),
        ({"payloadType": "x", "payload": "@@", "signatures": [{"sig": "AA=="}]}, "base64"),
    ],
    ids=["no-signatures", "no-type", "bad-base64"],
)
def test_malformed_envelopes_rejected(document: dict[str, object], message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        parse_envelope(json.dumps(document).encode())


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(SignatureVerificationError, match="duplicate key"):
        parse_envelope(b'{"payloadType": "a", "payloadType": "b"}')


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"_type": "https://in-toto.io/Statement/v2", "subject": [], "predicateType": "x"}, "type"),
        (
            {"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x"},
            "subject",
        ),
        (
            {"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {}}]},
            "predicateType",
        ),
    ],
    ids=["unknown-type", "no-subject", "no-predicate-type"],
)
def test_malformed_statements_rejected(document: dict[str, object], message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        parse_statement(json.dumps(document).encode())


def test_statement_v01_with_name() -> None:
    parsed = parse_statement(
        statement(DIGEST, "https://spdx.dev/Document", version="v0.1", name="r/a")
    )

    assert parsed.subjects[0].name == "r/a"
    assert parsed.names_digest(DIGEST)
    assert not parsed.names_digest("sha256:" + "00" * 32)
    assert not parsed.names_digest("not-a-digest")
