"""Fixtures for promotion tests: registries, the signing key, a policy that guards `prod/**`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.signatures.sign import sign_image
from tests.integration.gate.conftest import Keys, keys  # noqa: F401
from tests.support.registry import RunningRegistry, run_registry

POLICY = """\
defaultAction: deny
rules:
  - name: development
    repositories: ["dev/**"]
  - name: production
    repositories: ["prod/**"]
    signatures:
      authorities:
        - name: ci
          key: {path: cosign.pub}
"""


def write_promotion_policy(directory: Path, key_pair: Keys) -> Path:
    """Write the policy and its public key into `directory` and return the policy path."""
    (directory / "cosign.pub").write_bytes(key_pair.public_pem)
    policy = directory / "policy.yaml"
    policy.write_text(POLICY)
    return policy


@pytest.fixture
def policy_file(tmp_path: Path, keys: Keys) -> Path:  # noqa: F811
    return write_promotion_policy(tmp_path, keys)


@pytest.fixture
def second_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Another empty docker-registry, for copies between registries."""
    with run_registry(tmp_path / "second") as running:
        yield running


def sign_on(registry: RunningRegistry, repository: str, digest: str, private_pem: bytes) -> str:
    """Sign `repository@digest` on `registry` and return the signature manifest digest."""

    async def run() -> str:
        async with RegistryClient(registry.url) as client:
            return await sign_image(
                client,
                repository,
                digest,
                private_pem,
                docker_reference=f"{registry.host}/{repository}",
            )

    return asyncio.run(run())
