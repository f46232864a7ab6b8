"""Fixtures for gate tests: a registry, a key pair, a policy and the running gate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.signatures.sign import generate_keypair, sign_image
from tests.support.gate import RunningGate, run_gate
from tests.support.registry import RunningRegistry

POLICY = """\
defaultAction: deny
rules:
  - name: ci-signed
    repositories: ["test/**"]
    mode: {mode}
    signatures:
      indexPolicy: {index_policy}
      authorities:
        - name: ci
          key: {{path: cosign.pub}}
    immutableTags:
      patterns: ["*"]
      exclude: ["latest"]
"""


@dataclass
class Keys:
    private_pem: bytes
    public_pem: bytes


@pytest.fixture(scope="session")
def keys() -> Keys:
    private_pem, public_pem = generate_keypair()
    return Keys(private_pem, public_pem)


def write_policy(
    directory: Path, keys: Keys, *, mode: str = "enforce", index_policy: str = "self"
) -> Path:
    (directory / "cosign.pub").write_bytes(keys.public_pem)
    policy = directory / "policy.yaml"
    policy.write_text(POLICY.format(mode=mode, index_policy=index_policy))
    return policy


@pytest.fixture
def gate(tmp_path: Path, registry: RunningRegistry, keys: Keys) -> Iterator[RunningGate]:
    policy = write_policy(tmp_path, keys)
    with run_gate(tmp_path, registry.url, policy) as running:
        yield running


Signer = Callable[[str, str], None]


@pytest.fixture
def sign(registry: RunningRegistry, keys: Keys) -> Signer:
    """Sign `digest` in `repository` on the upstream registry with the trusted key."""

    def signer(repository: str, digest: str, private_pem: bytes | None = None) -> None:
        async def run() -> None:
            async with RegistryClient(registry.url) as client:
                await sign_image(
                    client,
                    repository,
                    digest,
                    private_pem or keys.private_pem,
                    docker_reference=f"{registry.host}/{repository}",
                )

        asyncio.run(run())

    return signer  # type: ignore[return-value]
