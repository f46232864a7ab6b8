"""The mutating webhook: JSONPatch pinning allowed tag references to their decided digest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from regward.admission.config import AdmissionSettings, parse_admission_settings
from regward.admission.review import mutate
from tests.unit.admission.reviews import (
    DIGEST_A,
    DIGEST_B,
    POD_SPEC_POINTER,
    WORKLOAD_KINDS,
    FakeDecider,
    apply_patch,
    patch_of,
    pod_spec,
    response_of,
    review,
    workload,
)

SIGNED = "registry.example.com:5000/team/app:v1"
UNSIGNED = "registry.example.com:5000/team/unsigned:v1"


def decider() -> FakeDecider:
    fake = FakeDecider()
    fake.allow(SIGNED, DIGEST_A)
    fake.deny(UNSIGNED, "no signature verified by authority 'ci'", DIGEST_B)
    return fake


async def run(
    body: bytes, fake: FakeDecider, settings: AdmissionSettings | None = None, **kwargs: Any
) -> dict[str, Any]:
    status, payload = await mutate(body, fake, settings or AdmissionSettings(), **kwargs)
    assert status == 200
    return response_of(payload)


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
async def test_allowed_tags_pinned_in_every_kind(kind: str) -> None:
    document = workload(
        kind, "web", "shop", pod_spec({"app": SIGNED, "other": UNSIGNED}, init={"setup": SIGNED})
    )
    response = await run(review(document, uid="m-1"), decider())
    assert response["uid"] == "m-1"
    assert response["allowed"] is True
    operations = patch_of(response)
    base = POD_SPEC_POINTER[kind]
    pinned = f"registry.example.com:5000/team/app@{DIGEST_A}"
    assert operations == [
        {"op": "test", "path": f"{base}/containers/0/image", "value": SIGNED},
        {"op": "replace", "path": f"{base}/containers/0/image", "value": pinned},
        {"op": "test", "path": f"{base}/initContainers/0/image", "value": SIGNED},
        {"op": "replace", "path": f"{base}/initContainers/0/image", "value": pinned},
    ]
    patched = apply_patch(document, operations)
    assert json.dumps(patched).count(pinned) == 2
    assert UNSIGNED in json.dumps(patched)


async def test_name_spelling_kept() -> None:
    fake = FakeDecider()
    fake.allow("nginx:1.25", DIGEST_A)
    fake.allow("localhost:5000/app", DIGEST_B)
    spec = pod_spec({"web": "nginx:1.25", "app": "localhost:5000/app"})
    operations = patch_of(await run(review(workload("Pod", "p", "ns", spec)), fake))
    values = [op["value"] for op in operations if op["op"] == "replace"]
    assert values == [f"nginx@{DIGEST_A}", f"localhost:5000/app@{DIGEST_B}"]


async def test_digest_references_left_alone() -> None:
    fake = decider()
    pinned = f"registry.example.com:5000/team/app:v1@{DIGEST_A}"
    response = await run(review(workload("Pod", "p", "ns", pod_spec({"app": pinned}))), fake)
    assert "patch" not in response
    assert fake.calls == []


async def test_denied_and_unresolved_images_not_patched() -> None:
    fake = decider()
    missing = "registry.example.com:5000/team/missing:v1"
    spec = pod_spec({"a": UNSIGNED, "b": missing})
    response = await run(review(workload("Pod", "p", "ns", spec)), fake)
    assert response["allowed"] is True
    assert "patch" not in response
    assert "patchType" not in response


async def test_warned_image_pinned() -> None:
    fake = FakeDecider()
    fake.warn(SIGNED, "rule staging (warn): unsigned", DIGEST_A)
    operations = patch_of(
        await run(review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), fake)
    )
    assert operations[1]["value"].endswith(f"@{DIGEST_A}")


async def test_invalid_digest_from_decider_not_used() -> None:
    fake = FakeDecider()
    fake.allow(SIGNED, "sha256:short")
    response = await run(review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), fake)
    assert "patch" not in response


async def test_registry_outside_allowed_list_not_pinned() -> None:
    settings = parse_admission_settings({"allowedRegistries": ["ghcr.io"]})
    fake = decider()
    response = await run(
        review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), fake, settings
    )
    assert "patch" not in response
    assert fake.calls == []


async def test_require_digest_namespace_not_pinned() -> None:
    settings = parse_admission_settings(
        {
            "requireDigest": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
            "namespaceLabels": {"payments": {"env": "prod"}},
        }
    )
    fake = decider()
    response = await run(
        review(workload("Pod", "p", "payments", pod_spec({"app": SIGNED}))), fake, settings
    )
    assert "patch" not in response
    response = await run(
        review(workload("Pod", "p", "dev", pod_spec({"app": SIGNED}))), fake, settings
    )
    assert "patch" in response


async def test_timeout_leaves_tag() -> None:
    fake = decider()
    fake.delays[SIGNED] = 5.0
    response = await run(
        review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), fake, budget=0.2
    )
    assert response["allowed"] is True
    assert "patch" not in response


async def test_update_and_dry_run_pinned() -> None:
    old = workload("Deployment", "web", "shop", pod_spec({"app": UNSIGNED}))
    new = workload("Deployment", "web", "shop", pod_spec({"app": SIGNED}))
    response = await run(review(new, operation="UPDATE", old=old, dry_run=True), decider())
    assert len(patch_of(response)) == 2


async def test_delete_and_unsupported_kinds_not_patched() -> None:
    old = workload("Deployment", "web", "shop", pod_spec({"app": SIGNED}))
    response = await run(review(None, operation="DELETE", old=old), decider())
    assert response == {"uid": response["uid"], "allowed": True}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n"},
    }
    response = await run(review(config_map), decider())
    assert response == {"uid": response["uid"], "allowed": True}


async def test_malformed_mutate_review_gets_400() -> None:
    status, payload = await mutate(b'{"kind": "AdmissionReview"}', decider(), AdmissionSettings())
    assert status == 400
    document = json.loads(payload)
    assert document["code"] == 400
    assert "apiVersion: Field required" in document["message"]
