"""ES256 signing keys of the token service: kept on disk, rotated with overlap, published as JWKS.

Each key is one PKCS#8 PEM file named `key-<created>-<kid>.pem` (mode 0600) in the key directory
(mode 0700), where `<created>` is the Unix time of creation and `<kid>` the RFC 7638 thumbprint of
the public key. The newest key signs. When it is older than the rotation period, a new key is
created under an exclusive `flock` on `.lock`, so gate replicas that share the folder create one
key between them. A replaced key keeps verifying, and stays in the JWKS, for the overlap period
after its successor was created, so no token it signed is cut short. After that its file is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regward.auth.errors import SigningKeyError
from regward.auth.jose import b64url_encode, jwk_thumbprint

logger = logging.getLogger(__name__)

_KEY_FILE = re.compile(r"key-(\d{1,12})-([A-Za-z0-9_-]{43})\.pem")
_RELOAD_INTERVAL = 60.0
"""Seconds between re-reads of the folder, which pick up keys other replicas created."""
_MISS_RELOAD_INTERVAL = 1.0
"""Shortest time between re-reads caused by a token naming an unknown key id."""


@dataclass(frozen=True)
class SigningKey:
    """One ES256 key pair of the token service."""

    kid: str
    """RFC 7638 thumbprint of the public key, used as the JWT `kid`."""
    created: float
    """Unix time the key was created."""
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with `kid`, `use` and `alg`."""
        jwk = _public_jwk(self.private_key.public_key())
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return jwk


def _public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(numbers.x.to_bytes(32, "big")),
        "y": b64url_encode(numbers.y.to_bytes(32, "big")),
    }


class SigningKeyRing:
    """The signing keys in one folder, with rotation, overlap and a JWKS view.

    Thread-safe: token issuing runs in worker threads while the gate serves the JWKS.
    """

    def __init__(
        self,
        directory: Path,
        *,
        rotation: float,
        overlap: float,
        clock: Callable[[], float],
    ) -> None:
        """Prepare the key ring; the folder is read on first use.

        Args:
            directory: the key folder, created with mode 0700 when missing.
            rotation: age in seconds at which the signing key is replaced.
            overlap: seconds a replaced key keeps verifying after its successor was created.
            clock: returns the current Unix time.
        """
        self._directory = directory
        self._rotation = rotation
        self._overlap = overlap
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._loaded_at: float | None = None
        self._last_miss_reload = float("-inf")

    @property
    def directory(self) -> Path:
        """The key folder."""
        return self._directory

    def signing_key(self) -> SigningKey:
        """Return the key to sign with, creating or rotating it when needed.

        Raises:
            SigningKeyError: the folder cannot be created, read or written.
        """
        with self._lock:
            now = self._clock()
            self._reload_if_stale(now)
            current = self._newest()
            if current is None or now - current.created >= self._rotation:
                current = self._rotate(now)
            return current

    def verification_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """Return the public key with id `kid` while it is still valid, else None.

        An unknown id causes a re-read of the folder, at most once a second, so a key that
        another replica just created is found.
        """
        with self._lock:
            now = self._clock()
            self._reload_if_stale(now)
            key = self._find(kid, now)
            if key is None and now - self._last_miss_reload >= _MISS_RELOAD_INTERVAL:
                self._last_miss_reload = now
                self._load(now)
                key = self._find(kid, now)
            return None if key is None else key.private_key.public_key()

    def jwks(self) -> dict[str, Any]:
        """Return the JWKS of every key that still verifies, newest first."""
        with self._lock:
            now = self._clock()
            self._reload_if_stale(now)
            return {"keys": [key.public_jwk() for key in self._valid_keys(now)]}

    def _newest(self) -> SigningKey | None:
        return self._keys[-1] if self._keys else None

    def _valid_keys(self, now: float) -> list[SigningKey]:
        valid = []
        for index, key in enumerate(self._keys):
            successor = self._keys[index + 1] if index + 1 < len(self._keys) else None
            if successor is None or now < successor.created + self._overlap:
                valid.append(key)
        return list(reversed(valid))

    def _find(self, kid: str, now: float) -> SigningKey | None:
        return next((key for key in self._valid_keys(now) if key.kid == kid), None)

    def _reload_if_stale(self, now: float) -> None:
        if self._loaded_at is None or not 0 <= now - self._loaded_at < _RELOAD_INTERVAL:
            self._load(now)

    def _ensure_directory(self) -> None:
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SigningKeyError(
                f"cannot create signing key folder {self._directory}: {exc.strerror}"
            ) from exc

    def _load(self, now: float) -> None:
        self._ensure_directory()
        keys: list[SigningKey] = []
        try:
            names = sorted(os.listdir(self._directory))
        except OSError as exc:
            raise SigningKeyError(
                f"cannot read signing key folder {self._directory}: {exc.strerror}"
            ) from exc
        for name in names:
            match = _KEY_FILE.fullmatch(name)
            if match is None:
                continue
            key = self._read_key(self._directory / name, float(match.group(1)), match.group(2))
            if key is not None:
                keys.append(key)
        keys.sort(key=lambda k: (k.created, k.kid))
        self._keys = keys
        self._loaded_at = now
        self._delete_retired(now)

    def _read_key(self, path: Path, created: float, kid: str) -> SigningKey | None:
        try:
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            return None  # Deleted by another replica after the listing.
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("ignoring unreadable signing key %s: %s", path, exc)
            return None
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            logger.warning("ignoring signing key %s: expected an EC P-256 private key", path)
            return None
        actual_kid = jwk_thumbprint(_public_jwk(private_key.public_key()))
        if actual_kid != kid:
            logger.warning(
                "ignoring signing key %s: file name has kid %s, key thumbprint is %s",
                path,
                kid,
                actual_kid,
            )
            return None
        return SigningKey(kid=kid, created=created, private_key=private_key)

    def _delete_retired(self, now: float) -> None:
        valid = {key.kid for key in self._valid_keys(now)}
        for key in [k for k in self._keys if k.kid not in valid]:
            path = self._directory / f"key-{int(key.created)}-{key.kid}.pem"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                logger.info("deleted retired signing key %s", key.kid)
        self._keys = [k for k in self._keys if k.kid in valid]

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[None]:
        lock_path = self._directory / ".lock"
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SigningKeyError(f"cannot open {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _rotate(self, now: float) -> SigningKey:
        self._ensure_directory()
        with self._folder_lock():
            # Another replica may have rotated while this one waited for the lock.
            self._load(now)
            current = self._newest()
            if current is not None and now - current.created < self._rotation:
                return current
            key = self._write_new_key(now)
            self._keys.append(key)
            logger.info("created signing key %s in %s", key.kid, self._directory)
            return key

    def _write_new_key(self, now: float) -> SigningKey:
        private_key = ec.generate_private_key(ec.SECP256R1())
        kid = jwk_thumbprint(_public_jwk(private_key.public_key()))
        created = int(now)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        final = self._directory / f"key-{created}-{kid}.pem"
        temporary = self._directory / f".tmp-{kid}"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            raise SigningKeyError(f"cannot write signing key {final}: {exc.strerror}") from exc
        return SigningKey(kid=kid, created=float(created), private_key=private_key)


def jwks_bytes(ring: SigningKeyRing) -> bytes:
    """Return the JWKS of `ring` as compact JSON bytes."""
    return json.dumps(ring.jwks(), separators=(",", ":")).encode()
