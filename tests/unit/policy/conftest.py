"""Fixtures for the policy tests: generated public keys and a helper that writes policy files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def public_pem(curve: ec.EllipticCurve | None = None) -> bytes:
    """Return the SubjectPublicKeyInfo PEM of a fresh ECDSA key (P-256 unless `curve`)."""
    private = ec.generate_private_key(curve or ec.SECP256R1())
    return private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A folder with `cosign.pub` and `rekor.pub`, two fresh P-256 public keys."""
    (tmp_path / "cosign.pub").write_bytes(public_pem())
    (tmp_path / "rekor.pub").write_bytes(public_pem())
    return tmp_path


WritePolicy = Callable[[str], Path]


@pytest.fixture
def write_policy(key_dir: Path) -> WritePolicy:
    """Write the given text to `policy.yaml` next to the generated keys and return its path."""

    def write(text: str) -> Path:
        path = key_dir / "policy.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
