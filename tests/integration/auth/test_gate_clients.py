"""Auth through the running gate with real clients: skopeo and podman with `--creds`.

The gate runs as `regward serve` in front of the test registry, with an `auth` section that trusts
the tests' local OIDC issuer (a JWKS file) and a permissive policy, so only auth decides.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from regward.auth.scope import Action
from regward.auth.static import StaticTokenStore
from regward.store.db import Store
from tests.support.gate import RunningGate, run_gate
from tests.support.images import push_image
from tests.support.registry import RunningRegistry
from tests.unit.auth.issuer import AUDIENCE, LocalIssuer, github_claims

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]

SERVICE = "regward-test"
POLICY = "defaultAction: allow\nrules: []\n"


@dataclass
class AuthGate:
    gate: RunningGate
    database: str
    workdir: Path

    def static_token(self, repository: str, *actions: Action) -> str:
        with Store(self.database) as store:
            tokens = StaticTokenStore(
                store.engine, max_lifetime=90 * 86400, rotation_overlap=3600, clock=time.time
            )
            return tokens.create(
                repositories=[repository],
                actions=list(actions) or [Action.PULL],
                expires_in=86400,
                description="e2e",
            ).secret


@contextlib.contextmanager
def auth_gate(workdir: Path, registry: RunningRegistry, issuer: LocalIssuer) -> Iterator[AuthGate]:
    """Start the gate with auth enabled; skip when the gate does not build the token service yet."""
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    config = workdir / "gate.yaml"
    section = {
        "enabled": True,
        "service": SERVICE,
        "keyDirectory": str(workdir / "keys"),
        "oidc": [
            {
                "name": "ci",
                "issuer": issuer.issuer,
                "audience": AUDIENCE,
                "jwksFile": str(issuer.jwks_path),
                "grants": [
                    {
                        "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
                        "repositories": ["test/app"],
                        "actions": ["pull", "push"],
                    },
                    {
                        "claims": {"repository": "acme/*"},
                        "repositories": ["test/shared"],
                        "actions": ["pull"],
                    },
                ],
            }
        ],
    }
    config.write_text(yaml.safe_dump({"auth": section}))
    database = f"sqlite:///{workdir / 'gate.db'}"
    with Store(database) as store:
        store.migrate()
    try:
        with run_gate(workdir, registry.url, policy, database=database, config=config) as gate:
            yield AuthGate(gate, database, workdir)
    except RuntimeError as exc:
        not_wired = ("auth is not wired yet", "No module named 'regward.gate.auth_wiring'")
        if any(text in str(exc) for text in not_wired):
            pytest.skip("the gate does not build the token service yet (regward.gate.wiring)")
        raise


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--command-timeout", "120s", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def upstream_has(registry: RunningRegistry, repository: str, tag: str) -> bool:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


@pytest.fixture
def running(
    tmp_path: Path, registry: RunningRegistry, oidc_issuer: LocalIssuer
) -> Iterator[AuthGate]:
    push_image(registry.url, "test/app", "v1")
    push_image(registry.url, "test/other", "v1", {"other.txt": b"other"})
    with auth_gate(tmp_path, registry, oidc_issuer) as started:
        yield started


def test_anonymous_pull_challenged(running: AuthGate) -> None:
    url = f"{running.gate.url}/v2/test/app/manifests/v1"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, timeout=10)
    assert raised.value.code == 401
    challenge = raised.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert f'service="{SERVICE}"' in challenge
    assert 'scope="repository:test/app:pull"' in challenge
    assert json.loads(raised.value.read())["errors"][0]["code"] == "UNAUTHORIZED"

    result = skopeo("inspect", "--tls-verify=false", f"docker://{running.gate.host}/test/app:v1")
    assert result.returncode != 0
    assert "authentication required" in result.stderr or "unauthorized" in result.stderr.lower()


def test_pull_only_static_token(running: AuthGate, tmp_path: Path) -> None:
    token = running.static_token("test/app", Action.PULL)
    gate = running.gate.host
    pulled = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"ci:{token}",
        f"docker://{gate}/test/app:v1",
        f"dir:{tmp_path / 'app'}",
    )
    assert pulled.returncode == 0, pulled.stderr

    other = skopeo(
        "inspect", "--tls-verify=false", "--creds", f"ci:{token}", f"docker://{gate}/test/other:v1"
    )
    assert other.returncode != 0
    assert "denied" in other.stderr.lower()

    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"ci:{token}",
        f"dir:{tmp_path / 'app'}",
        f"docker://{gate}/test/app:v2",
    )
    assert pushed.returncode != 0


def test_ci_oidc_token_pushes(
    running: AuthGate, registry: RunningRegistry, oidc_issuer: LocalIssuer
) -> None:
    jwt_text = oidc_issuer.mint(github_claims())
    gate = running.gate.host
    copied = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        f"oidc:{jwt_text}",
        "--dest-creds",
        f"oidc:{jwt_text}",
        f"docker://{gate}/test/app:v1",
        f"docker://{gate}/test/app:v2",
    )
    assert copied.returncode == 0, copied.stderr
    assert upstream_has(registry, "test/app", "v2")

    # The gate writes audit records in batches from a background thread.
    deadline = time.monotonic() + 10
    identities: set[str | None] = set()
    while "ci:repo:acme/app:ref:refs/heads/main" not in identities and time.monotonic() < deadline:
        time.sleep(0.2)
        with Store(running.database) as store:
            records = store.list_audit(repository="test/app", limit=200)
        identities = {record.identity for record in records}
    assert "ci:repo:acme/app:ref:refs/heads/main" in identities
    assert all(jwt_text not in json.dumps(record.reasons) for record in records)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"repository": "evil/app"}, id="no-matching-grant"),
        pytest.param({"ref": "refs/heads/feature"}, id="pull-only-grant"),
        pytest.param({"lifetime": 300, "now": time.time() - 3600}, id="expired"),
    ],
)
def test_other_ci_tokens_cannot_push(
    running: AuthGate,
    registry: RunningRegistry,
    oidc_issuer: LocalIssuer,
    tmp_path: Path,
    claims: dict[str, object],
) -> None:
    gate = running.gate.host
    source = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/test/app:v1",
        f"dir:{tmp_path / 'src'}",
    )
    assert source.returncode == 0, source.stderr
    jwt_text = oidc_issuer.mint(github_claims(**claims))  # type: ignore[arg-type]
    pushed = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"oidc:{jwt_text}",
        f"dir:{tmp_path / 'src'}",
        f"docker://{gate}/test/app:v3",
    )
    assert pushed.returncode != 0
    assert not upstream_has(registry, "test/app", "v3")


@pytest.mark.podman
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_pull_with_creds(running: AuthGate, tmp_path: Path) -> None:
    token = running.static_token("test/app", Action.PULL)
    # podman limits the runroot path to 50 characters, so it lives in a short temporary folder.
    runroot = Path(tempfile.mkdtemp(prefix="rw-run-"))
    storage = [
        "--root",
        str(tmp_path / "root"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
    ]

    def pull(reference: str, creds: str | None) -> subprocess.CompletedProcess[str]:
        command = ["podman", *storage, "pull", "--tls-verify=false"]
        if creds is not None:
            command += ["--creds", creds]
        return subprocess.run(
            [*command, f"{running.gate.host}/{reference}"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    try:
        allowed = pull("test/app:v1", f"ci:{token}")
        anonymous = pull("test/app:v1", None)
        other = pull("test/other:v1", f"ci:{token}")
    finally:
        shutil.rmtree(runroot, ignore_errors=True)

    assert allowed.returncode == 0, allowed.stderr
    assert anonymous.returncode != 0
    assert other.returncode != 0
