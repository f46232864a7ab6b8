"""podman enforces the exported containers-policy.json: a signed image pulls, an unsigned one not.

The images are pushed straight to a docker-registry on loopback and pulled from it without
the gate, as a non-Kubernetes host would. podman runs as root with vfs storage in temporary
folders. `HOME` points at a temporary folder, so podman reads the exported registries.d from
`$HOME/.config/containers/registries.d` and nothing under /etc is changed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from regward.cli.main import main
from regward.oci.client import RegistryClient
from regward.signatures.sign import generate_keypair, sign_image
from tests.support.images import push_image
from tests.support.registry import RunningRegistry

pytestmark = [
    pytest.mark.registry,
    pytest.mark.podman,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

POLICY = """\
defaultAction: deny
rules:
  - name: ci-signed
    repositories: ["test/**"]
    signatures:
      authorities:
        - name: ci
          key: {path: cosign.pub}
  - name: public
    repositories: ["public/**"]
"""

# Debian 12 builds podman and skopeo with sigstore verification patched out; they reject every
# image that a sigstoreSigned requirement covers with this message.
SIGSTORE_DISABLED = "sigstore disabled"


@pytest.fixture
def runroot() -> Iterator[Path]:
    # podman limits the runroot path to 50 characters, so it lives in a short temporary folder.
    path = Path(tempfile.mkdtemp(prefix="rw-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sign(registry: RunningRegistry, repository: str, digest: str, private_pem: bytes) -> None:
    async def run() -> None:
        async with RegistryClient(registry.url) as client:
            await sign_image(
                client,
                repository,
                digest,
                private_pem,
                docker_reference=f"{registry.host}/{repository}",
            )

    asyncio.run(run())


@dataclass
class Setup:
    """A registry with images, the exported files and a podman runner that uses them."""

    registry: RunningRegistry
    pull: Callable[[str], subprocess.CompletedProcess[str]]


@pytest.fixture
def setup(
    registry: RunningRegistry, tmp_path: Path, runroot: Path, capsys: pytest.CaptureFixture[str]
) -> Setup:
    private_pem, public_pem = generate_keypair()
    other_private, _ = generate_keypair()
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    (tmp_path / "policy.yaml").write_text(POLICY)

    signed = push_image(registry.url, "test/app", "signed")
    sign(registry, "test/app", signed.digest, private_pem)
    push_image(registry.url, "test/app", "unsigned", {"other.txt": b"unsigned"})
    wrong = push_image(registry.url, "test/app", "wrongkey", {"other.txt": b"wrong key"})
    sign(registry, "test/app", wrong.digest, other_private)
    outside = push_image(registry.url, "other/app", "signed", {"other.txt": b"outside"})
    sign(registry, "other/app", outside.digest, private_pem)
    push_image(registry.url, "public/tool", "v1", {"tool.txt": b"public"})

    exported = tmp_path / "exported"
    code = main(
        [
            "export",
            "containers-policy",
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--output",
            str(exported),
            "--registry",
            registry.host,
        ]
    )
    assert code == 0, capsys.readouterr().err

    home = tmp_path / "home"
    registries_d = home / ".config" / "containers" / "registries.d"
    registries_d.mkdir(parents=True)
    shutil.copy(exported / "registries.d" / "regward.yaml", registries_d / "regward.yaml")
    environment = {**os.environ, "HOME": str(home)}
    storage = [
        "--root",
        str(tmp_path / "storage"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
        "--events-backend",
        "file",
    ]

    def pull(reference: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binary and arguments
            [
                "podman",
                *storage,
                "pull",
                "--tls-verify=false",
                "--signature-policy",
                str(exported / "policy.json"),
                reference,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=environment,
        )

    return Setup(registry, pull)


def test_podman_reads_exported_policy(setup: Setup) -> None:
    host = setup.registry.host
    # A rule without signatures becomes insecureAcceptAnything; podman rejects a policy.json
    # with any field it does not know, so this pull also shows the file parses.
    allowed = setup.pull(f"{host}/public/tool:v1")
    assert allowed.returncode == 0, allowed.stderr

    # No rule covers other/**, so defaultAction: deny rejects it even though it is signed.
    rejected = setup.pull(f"{host}/other/app:signed")
    assert rejected.returncode != 0
    assert "rejected" in rejected.stderr.lower(), rejected.stderr

    unsigned = setup.pull(f"{host}/test/app:unsigned")
    assert unsigned.returncode != 0
    assert "rejected" in unsigned.stderr.lower(), unsigned.stderr


def test_podman_requires_same_signatures(setup: Setup) -> None:
    host = setup.registry.host
    allowed = setup.pull(f"{host}/test/app:signed")
    if SIGSTORE_DISABLED in allowed.stderr:
        pytest.skip(
            f"this podman build cannot verify sigstore signatures: {allowed.stderr.strip()}"
        )
    assert allowed.returncode == 0, allowed.stderr

    unsigned = setup.pull(f"{host}/test/app:unsigned")
    assert unsigned.returncode != 0
    assert "signature" in unsigned.stderr.lower(), unsigned.stderr

    wrong_key = setup.pull(f"{host}/test/app:wrongkey")
    assert wrong_key.returncode != 0
    assert "signature" in wrong_key.stderr.lower(), wrong_key.stderr
