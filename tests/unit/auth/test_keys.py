"""Signing keys on disk: creation, permissions, rotation with overlap, JWKS, shared folders."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import jwt

from regward.auth.keys import SigningKeyRing, jwks_bytes
from tests.unit.auth.conftest import Clock

DAY = 86400


def _ring(
    directory: Path, clock: Clock, *, rotation: float = 30 * DAY, overlap: float = DAY
) -> SigningKeyRing:
    return SigningKeyRing(directory, rotation=rotation, overlap=overlap, clock=clock)


def test_first_key_created_private(tmp_path: Path, clock: Clock) -> None:
    ring = _ring(tmp_path / "keys", clock)
    key = ring.signing_key()
    files = list((tmp_path / "keys").glob("key-*.pem"))
    assert [f.name for f in files] == [f"key-{int(clock.now)}-{key.kid}.pem"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_key_reused_across_instances(tmp_path: Path, clock: Clock) -> None:
    first = _ring(tmp_path / "keys", clock).signing_key()
    second = _ring(tmp_path / "keys", clock).signing_key()
    assert first.kid == second.kid


def test_rotation_with_overlap(tmp_path: Path, clock: Clock) -> None:
    ring = _ring(tmp_path / "keys", clock, rotation=30 * DAY, overlap=DAY)
    old = ring.signing_key()
    clock.advance(30 * DAY)
    new = ring.signing_key()
    assert new.kid != old.kid

    # During the overlap both verify and both are published, newest first.
    assert ring.verification_key(old.kid) is not None
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]

    clock.advance(DAY + 1)
    assert ring.verification_key(old.kid) is None
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]
    assert not list((tmp_path / "keys").glob(f"*{old.kid}*"))


def test_jwks_verifies_issued_jwt(tmp_path: Path, clock: Clock) -> None:
    ring = _ring(tmp_path / "keys", clock)
    key = ring.signing_key()
    token = jwt.encode({"sub": "x"}, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    document = json.loads(jwks_bytes(ring))
    jwk = document["keys"][0]
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert jwk["alg"] == "ES256"
    assert "d" not in jwk
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["ES256"])["sub"] == "x"


def test_unknown_kid_rereads_folder(tmp_path: Path, clock: Clock) -> None:
    reader = _ring(tmp_path / "keys", clock)
    reader.jwks()
    writer = _ring(tmp_path / "keys", clock)
    key = writer.signing_key()
    clock.advance(2)
    assert reader.verification_key(key.kid) is not None
    assert reader.verification_key("no-such-kid") is None


def test_concurrent_rings_create_one_key(tmp_path: Path, clock: Clock) -> None:
    rings = [_ring(tmp_path / "keys", clock) for _ in range(6)]
    kids: list[str] = []
    threads = [threading.Thread(target=lambda r=r: kids.append(r.signing_key().kid)) for r in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(list((tmp_path / "keys").glob("key-*.pem"))) == 1


def test_bad_key_files_ignored(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    (directory / f"key-1-{'A' * 43}.pem").write_text("not a key")
    (directory / "README").write_text("ignored")
    ring = _ring(directory, clock)
    key = ring.signing_key()
    assert key.kid != "A" * 43
    assert [k["kid"] for k in ring.jwks()["keys"]] == [key.kid]
