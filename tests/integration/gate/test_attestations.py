"""A rule requiring a keyless signature, an SPDX SBOM and SLSA provenance, end to end.

A private Sigstore made by the test signs images in both of cosign's formats (tag-based `.sig`
and `.att` with Rekor bundles, and Sigstore bundles attached as referrers). Each image that lacks
one of the three pieces is denied with a reason per missing piece, through the running gate and
with `regward check`. The images that have all three are allowed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regward.signatures.dsse import COSIGN_SIGN_PREDICATE_TYPE
from tests.support.gate import RunningGate, run_gate
from tests.support.images import OCI_INDEX, OCI_MANIFEST, PushedImage, push_image
from tests.support.registry import RunningRegistry
from tests.support.sigstore import (
    DSSE_LAYER,
    SIMPLE_SIGNING,
    Identity,
    PrivateSigstore,
    keyless_attestation_layer,
    keyless_bundle,
    keyless_signature_layer,
    provenance_v1,
    push_bundle_referrer,
    push_layers,
    spdx_document,
    statement,
    tag_for,
)

pytestmark = pytest.mark.registry

SPDX = "https://spdx.dev/Document"
SLSA = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/actions/runner"
SOURCE = "https://github.com/acme/app"
ISSUER = "https://token.actions.githubusercontent.com"
CI = Identity("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
STRANGER = Identity("https://github.com/mallory/app/.github/workflows/release.yml@refs/heads/main")

KEYLESS = (
    '{issuer: "' + ISSUER + '", subjectRegExp: "https://github\\\\.com/acme/.+", '
    "trustedRoot: {path: trusted_root.json}}"
)
POLICY = f"""\
defaultAction: deny
rules:
  - name: release
    repositories: ["team/**"]
    signatures:
      authorities:
        - name: gha
          keyless: {KEYLESS}
    attestations:
      - name: sbom
        predicateType: {SPDX}
        authorities: [{{name: gha, keyless: {KEYLESS}}}]
      - name: provenance
        predicateType: {SLSA}
        authorities: [{{name: gha, keyless: {KEYLESS}}}]
        provenance: {{builderId: "{BUILDER}", sourceRepository: "{SOURCE}"}}
"""


@dataclass
class Scenario:
    """Images pushed to the registry, by name, with the reason codes they must be denied for."""

    images: dict[str, PushedImage]
    expected: dict[str, list[str]]


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


@pytest.fixture
def policy_file(tmp_path: Path, sigstore: PrivateSigstore) -> Path:
    sigstore.write_trusted_root(tmp_path / "trusted_root.json")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def gate(tmp_path: Path, registry: RunningRegistry, policy_file: Path) -> Iterator[RunningGate]:
    with run_gate(tmp_path, registry.url, policy_file) as running:
        yield running


def sign_tag(registry: RunningRegistry, sigstore: PrivateSigstore, image: PushedImage) -> None:
    layer = keyless_signature_layer(sigstore, CI, f"{registry.host}/team/app", image.digest)
    push_layers(registry.url, "team/app", tag_for(image.digest, "sig"), [layer], SIMPLE_SIGNING)


def sign_bundle(registry: RunningRegistry, sigstore: PrivateSigstore, image: PushedImage) -> None:
    bundle = keyless_bundle(sigstore, CI, statement(image.digest, COSIGN_SIGN_PREDICATE_TYPE))
    push_bundle_referrer(
        registry.url, "team/app", image, bundle, predicate_type=COSIGN_SIGN_PREDICATE_TYPE
    )


def sbom_bundle(registry: RunningRegistry, sigstore: PrivateSigstore, image: PushedImage) -> None:
    bundle = keyless_bundle(sigstore, CI, statement(image.digest, SPDX, spdx_document()))
    push_bundle_referrer(registry.url, "team/app", image, bundle, predicate_type=SPDX)


def provenance_att(
    registry: RunningRegistry,
    sigstore: PrivateSigstore,
    image: PushedImage,
    *,
    builder: str = BUILDER,
    identity: Identity = CI,
) -> None:
    payload = statement(image.digest, SLSA, provenance_v1(builder, SOURCE))
    layer = keyless_attestation_layer(sigstore, identity, payload, SLSA)
    push_layers(registry.url, "team/app", tag_for(image.digest, "att"), [layer], DSSE_LAYER)


def provenance_bundle(
    registry: RunningRegistry, sigstore: PrivateSigstore, image: PushedImage
) -> None:
    bundle = keyless_bundle(
        sigstore, CI, statement(image.digest, SLSA, provenance_v1(BUILDER, SOURCE))
    )
    push_bundle_referrer(
        registry.url, "team/app", image, bundle, predicate_type=SLSA, index_artifact_type=False
    )


@pytest.fixture
def scenario(registry: RunningRegistry, sigstore: PrivateSigstore) -> Scenario:
    def push(tag: str) -> PushedImage:
        return push_image(registry.url, "team/app", tag, {"app.txt": tag.encode()})

    images = {
        name: push(name)
        for name in (
            "complete-tags",
            "complete-bundles",
            "no-signature",
            "no-sbom",
            "no-provenance",
            "wrong-builder",
            "foreign-provenance",
            "nothing",
        )
    }
    # Tag-based signature and provenance, SBOM as a bundle.
    sign_tag(registry, sigstore, images["complete-tags"])
    sbom_bundle(registry, sigstore, images["complete-tags"])
    provenance_att(registry, sigstore, images["complete-tags"])
    # Everything as bundles, the provenance listed without artifactType.
    sign_bundle(registry, sigstore, images["complete-bundles"])
    sbom_bundle(registry, sigstore, images["complete-bundles"])
    provenance_bundle(registry, sigstore, images["complete-bundles"])

    sbom_bundle(registry, sigstore, images["no-signature"])
    provenance_att(registry, sigstore, images["no-signature"])

    sign_tag(registry, sigstore, images["no-sbom"])
    provenance_att(registry, sigstore, images["no-sbom"])

    sign_bundle(registry, sigstore, images["no-provenance"])
    sbom_bundle(registry, sigstore, images["no-provenance"])

    sign_tag(registry, sigstore, images["wrong-builder"])
    sbom_bundle(registry, sigstore, images["wrong-builder"])
    provenance_att(registry, sigstore, images["wrong-builder"], builder="https://evil.example/ci")

    sign_tag(registry, sigstore, images["foreign-provenance"])
    sbom_bundle(registry, sigstore, images["foreign-provenance"])
    provenance_att(registry, sigstore, images["foreign-provenance"], identity=STRANGER)

    expected = {
        "complete-tags": [],
        "complete-bundles": [],
        "no-signature": ["signature-missing"],
        "no-sbom": ["attestation-missing"],
        "no-provenance": ["attestation-missing"],
        "wrong-builder": ["attestation-invalid"],
        "foreign-provenance": ["attestation-invalid"],
        "nothing": ["signature-missing", "attestation-missing", "attestation-missing"],
    }
    return Scenario(images, expected)


def get_manifest(gate: RunningGate, tag: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{gate.url}/v2/team/app/manifests/{tag}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check(registry: RunningRegistry, tag: str, policy: Path) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "regward.cli.main",
            "check",
            f"{registry.host}/team/app:{tag}",
            "--policy",
            str(policy),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_gate_enforces_signature_sbom_and_provenance(gate: RunningGate, scenario: Scenario) -> None:
    for name, codes in scenario.expected.items():
        status, body = get_manifest(gate, name)
        if not codes:
            assert status == 200, (name, body[:500])
            assert body == scenario.images[name].manifest
            continue
        assert status == 403, (name, body[:500])
        error = json.loads(body)["errors"][0]
        assert error["code"] == "DENIED"
        assert [reason["code"] for reason in error["detail"]["reasons"]] == codes, (name, error)


def test_denial_names_each_missing_piece(gate: RunningGate, scenario: Scenario) -> None:
    _, body = get_manifest(gate, "nothing")
    message = json.loads(body)["errors"][0]["message"]

    assert "no signature verified by authority 'gha'" in message
    assert "attestation 'sbom' (https://spdx.dev/Document) is missing" in message
    assert "attestation 'provenance' (https://slsa.dev/provenance/v1) is missing" in message
    _, body = get_manifest(gate, "wrong-builder")
    assert "builder id 'https://evil.example/ci'" in json.loads(body)["errors"][0]["message"]


def test_check_command_enforces_the_same_rule(
    registry: RunningRegistry, scenario: Scenario, policy_file: Path
) -> None:
    for name in ("complete-tags", "complete-bundles", "no-signature", "no-sbom", "no-provenance"):
        code, document = check(registry, name, policy_file)
        expected = scenario.expected[name]
        assert document["digest"] == scenario.images[name].digest
        if not expected:
            assert code == 0, document
            assert document["allowed"] is True
            continue
        assert code == 1, document
        assert document["verdict"] == "deny"
        assert [reason["code"] for reason in document["reasons"]] == expected
