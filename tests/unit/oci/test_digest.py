"""Digest parsing, computing and verifying, including malformed and hostile digests."""

from __future__ import annotations

import hashlib

import pytest

from regward.oci.digest import (
    DigestVerifier,
    compute_digest,
    is_digest,
    parse_digest,
    referrers_tag,
    split_digest,
    verify_digest,
)
from regward.oci.errors import DigestMismatchError, InvalidDigestError, OCIError

HELLO_SHA256 = "sha256:" + hashlib.sha256(b"hello").hexdigest()
HELLO_SHA512 = "sha512:" + hashlib.sha512(b"hello").hexdigest()


@pytest.mark.parametrize("text", [HELLO_SHA256, HELLO_SHA512])
def test_parse_digest_accepts_supported(text: str) -> None:
    assert parse_digest(text) == text
    assert is_digest(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected <algorithm>:<hex>"),
        ("sha256", "expected <algorithm>:<hex>"),
        ("sha256:", "expected <algorithm>:<hex>"),
        (":" + "a" * 64, "expected <algorithm>:<hex>"),
        ("SHA256:" + "a" * 64, "expected <algorithm>:<hex>"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("sha256:" + "a" * 63, "64 lowercase hex"),
        ("sha256:" + "a" * 65, "64 lowercase hex"),
        ("sha256:" + "g" * 64, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("sha256:" + "a" * 63 + "\n", "expected <algorithm>:<hex>"),
        (" sha256:" + "a" * 64, "expected <algorithm>:<hex>"),
        ("sha256:" + "a" * 64 + ":x", "expected <algorithm>:<hex>"),
        ("blake3:" + "a" * 64, "unsupported digest algorithm 'blake3'"),
        ("md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "unsupported"),
        ("sha256:" + "a" * 1000, "the maximum is 256"),
    ],
)
def test_parse_digest_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidDigestError, match=message):
        parse_digest(text)
    assert not is_digest(text)


def test_invalid_digest_error_is_oci_error() -> None:
    with pytest.raises(OCIError):
        parse_digest("nope")


def test_compute_digest_sha256_and_sha512() -> None:
    assert compute_digest(b"hello") == HELLO_SHA256
    assert compute_digest(b"hello", "sha512") == HELLO_SHA512


def test_compute_digest_rejects_unknown_algorithm() -> None:
    with pytest.raises(InvalidDigestError, match="unsupported digest algorithm 'md5'"):
        compute_digest(b"hello", "md5")


def test_split_digest_returns_parts() -> None:
    assert split_digest(HELLO_SHA256) == ("sha256", HELLO_SHA256[7:])


def test_verify_digest_passes_on_match() -> None:
    verify_digest(b"hello", HELLO_SHA256)
    verify_digest(b"hello", HELLO_SHA512)


def test_verify_digest_mismatch_names_both_values() -> None:
    with pytest.raises(DigestMismatchError) as caught:
        verify_digest(b"hellO", HELLO_SHA256, subject="blob x")
    actual = compute_digest(b"hellO")
    assert str(caught.value) == f"digest mismatch for blob x: got {actual}, expected {HELLO_SHA256}"
    assert caught.value.expected == HELLO_SHA256
    assert caught.value.actual == actual


def test_verify_digest_rejects_malformed_expected() -> None:
    with pytest.raises(InvalidDigestError):
        verify_digest(b"hello", "sha256:xyz")


def test_digest_verifier_incremental() -> None:
    verifier = DigestVerifier(HELLO_SHA256)
    for chunk in (b"he", b"", b"llo"):
        verifier.update(chunk)
    assert verifier.size == 5
    assert verifier.verify() == HELLO_SHA256


def test_digest_verifier_detects_truncation() -> None:
    verifier = DigestVerifier(HELLO_SHA512, subject="layer")
    verifier.update(b"hell")
    with pytest.raises(DigestMismatchError, match="digest mismatch for layer: got sha512:"):
        verifier.verify()


def test_referrers_tag_sha256_keeps_full_hex() -> None:
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64


def test_referrers_tag_sha512_truncates_to_64() -> None:
    digest = "sha512:" + "0123456789abcdef" * 8
    assert referrers_tag(digest) == "sha512-" + ("0123456789abcdef" * 8)[:64]
