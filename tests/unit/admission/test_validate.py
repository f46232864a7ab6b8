"""The validating webhook with a fake ImageDecider: verdicts, perimeter rules, budget, errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from regward.admission.config import AdmissionSettings, parse_admission_settings
from regward.admission.interface import ImageVerdict
from regward.admission.review import MAX_REVIEW_BYTES, validate
from regward.errors import RegwardError
from tests.unit.admission.reviews import (
    DIGEST_A,
    RESOURCES,
    WORKLOAD_KINDS,
    FakeDecider,
    pod_spec,
    response_of,
    review,
    workload,
)

SIGNED = "registry.example.com/team/app:v1"
UNSIGNED = "registry.example.com/team/unsigned:v1"
SETTINGS = AdmissionSettings()


def decider_with_images() -> FakeDecider:
    decider = FakeDecider()
    decider.allow(SIGNED)
    decider.deny(UNSIGNED, "rule ci-signed: no signature verified by authority 'ci'")
    return decider


async def run(
    body: bytes,
    decider: FakeDecider,
    settings: AdmissionSettings = SETTINGS,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    status, payload = await validate(body, decider, settings, **kwargs)
    if status == 200:
        return status, response_of(payload)
    return status, json.loads(payload)


async def test_signed_pod_allowed_with_same_uid() -> None:
    body = review(workload("Pod", "web", "shop", pod_spec({"app": SIGNED})), uid="uid-123")
    status, response = await run(body, decider_with_images())
    assert status == 200
    assert response["uid"] == "uid-123"
    assert response["allowed"] is True
    assert "status" not in response
    assert "warnings" not in response


async def test_unsigned_pod_denied_with_image_and_reason() -> None:
    body = review(workload("Pod", "web", "shop", pod_spec({"app": UNSIGNED})), uid="uid-9")
    status, response = await run(body, decider_with_images())
    assert status == 200
    assert response["uid"] == "uid-9"
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("regward denied 1 image: ")
    assert f'container "app" image {UNSIGNED}' in message
    assert "no signature verified by authority 'ci'" in message


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
async def test_each_workload_kind_checked(kind: str) -> None:
    spec = pod_spec({"app": SIGNED}, init={"setup": UNSIGNED})
    body = review(workload(kind, "web", "shop", spec))
    decider = decider_with_images()
    _, response = await run(body, decider)
    assert response["allowed"] is False
    assert f'initContainer "setup" image {UNSIGNED}' in response["status"]["message"]
    assert sorted(decider.calls) == sorted([SIGNED, UNSIGNED])


async def test_denial_lists_every_failing_image() -> None:
    other = "registry.example.com/team/other:v2"
    spec = pod_spec(
        {"app": SIGNED, "proxy": UNSIGNED},
        init={"setup": other},
        ephemeral={"debug": UNSIGNED},
    )
    body = review(workload("Deployment", "web", "shop", spec))
    _, response = await run(body, decider_with_images())
    message = response["status"]["message"]
    assert message.startswith("regward denied 3 images: ")
    assert f'container "proxy" image {UNSIGNED}' in message
    assert f'initContainer "setup" image {other}: manifest {other} not found' in message
    assert f'ephemeralContainer "debug" image {UNSIGNED}' in message
    assert f'container "app" image {SIGNED}' not in message


async def test_identical_images_decided_once() -> None:
    spec = pod_spec({"a": SIGNED, "b": SIGNED}, init={"c": SIGNED})
    decider = decider_with_images()
    _, response = await run(review(workload("Pod", "p", "ns", spec)), decider)
    assert response["allowed"] is True
    assert decider.calls == [SIGNED]


async def test_warn_mode_returns_warnings() -> None:
    decider = FakeDecider()
    decider.warn(SIGNED, "rule staging (warn): no signature verified by authority 'ci'")
    _, response = await run(review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), decider)
    assert response["allowed"] is True
    assert response["warnings"] == [
        f'regward: container "app" image {SIGNED}: rule staging (warn): no signature verified '
        "by authority 'ci'"
    ]


async def test_update_checks_new_object() -> None:
    old = workload("Deployment", "web", "shop", pod_spec({"app": SIGNED}))
    new = workload("Deployment", "web", "shop", pod_spec({"app": UNSIGNED}))
    _, response = await run(review(new, operation="UPDATE", old=old), decider_with_images())
    assert response["allowed"] is False
    assert UNSIGNED in response["status"]["message"]


async def test_ephemeral_container_subresource_update() -> None:
    pod = workload("Pod", "web", "shop", pod_spec({"app": SIGNED}))
    debugged = workload(
        "Pod", "web", "shop", pod_spec({"app": SIGNED}, ephemeral={"dbg": UNSIGNED})
    )
    body = review(debugged, operation="UPDATE", old=pod, sub_resource="ephemeralcontainers")
    _, response = await run(body, decider_with_images())
    assert response["allowed"] is False
    assert f'ephemeralContainer "dbg" image {UNSIGNED}' in response["status"]["message"]


async def test_object_being_deleted_is_not_checked() -> None:
    document = workload(
        "Deployment",
        "web",
        "shop",
        pod_spec({"app": UNSIGNED}),
        deletionTimestamp="2026-03-02T00:00:00Z",
        finalizers=[],
    )
    decider = decider_with_images()
    _, response = await run(review(document, operation="UPDATE", old=document), decider)
    assert response["allowed"] is True
    assert decider.calls == []


async def test_delete_is_allowed() -> None:
    old = workload("Deployment", "web", "shop", pod_spec({"app": UNSIGNED}))
    decider = decider_with_images()
    _, response = await run(review(None, operation="DELETE", old=old), decider)
    assert response["allowed"] is True
    assert decider.calls == []


async def test_unsupported_kind_allowed_with_warning() -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns"},
        "data": {},
    }
    _, response = await run(review(config_map), decider_with_images())
    assert response["allowed"] is True
    assert response["warnings"] == ["regward does not inspect objects of kind ConfigMap"]


# -- perimeter rules -----------------------------------------------------------------------


async def test_registry_outside_allowed_list_denied_without_decision() -> None:
    settings = parse_admission_settings({"allowedRegistries": ["registry.example.com"]})
    decider = decider_with_images()
    spec = pod_spec({"app": SIGNED, "hub": "nginx:1.25"})
    _, response = await run(review(workload("Pod", "p", "ns", spec)), decider, settings)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert (
        'container "hub" image nginx:1.25: registry docker.io is not in '
        "admission.allowedRegistries (registry.example.com)"
    ) in message
    assert decider.calls == [SIGNED]


async def test_invalid_reference_denied() -> None:
    _, response = await run(
        review(workload("Pod", "p", "ns", pod_spec({"app": "Registry/App:v1"}))),
        decider_with_images(),
    )
    assert response["allowed"] is False
    assert (
        'container "app" image Registry/App:v1: invalid image reference'
        in (response["status"]["message"])
    )


PROD_DIGEST = {"requireDigest": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]}


async def test_require_digest_from_namespace_object() -> None:
    settings = parse_admission_settings(PROD_DIGEST)
    body = review(
        workload("Deployment", "web", "payments", pod_spec({"app": SIGNED})),
        extra_request={
            "namespaceObject": {"metadata": {"name": "payments", "labels": {"env": "prod"}}}
        },
    )
    decider = decider_with_images()
    _, response = await run(body, decider, settings)
    assert response["allowed"] is False
    assert (
        "namespace payments requires images by digest (admission.requireDigest): name it as "
        "registry.example.com/team/app@sha256:<digest>"
    ) in response["status"]["message"]
    assert decider.calls == []


async def test_require_digest_from_configured_labels() -> None:
    settings = parse_admission_settings(
        {**PROD_DIGEST, "namespaceLabels": {"payments": {"env": "prod"}}}
    )
    decider = decider_with_images()
    pinned = f"registry.example.com/team/app@{DIGEST_A}"
    decider.allow(pinned)
    tagged = review(workload("Pod", "p", "payments", pod_spec({"app": SIGNED})))
    _, response = await run(tagged, decider, settings)
    assert response["allowed"] is False

    by_digest = review(workload("Pod", "p", "payments", pod_spec({"app": pinned})))
    _, response = await run(by_digest, decider, settings)
    assert response["allowed"] is True

    other_namespace = review(workload("Pod", "p", "dev", pod_spec({"app": SIGNED})))
    _, response = await run(other_namespace, decider, settings)
    assert response["allowed"] is True


class _Labels:
    def __init__(self, labels: Mapping[str, str] | None, delay: float = 0.0) -> None:
        self.labels = labels
        self.delay = delay
        self.asked: list[str] = []

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        self.asked.append(namespace)
        await asyncio.sleep(self.delay)
        return self.labels


async def test_require_digest_from_lookup() -> None:
    settings = parse_admission_settings(PROD_DIGEST)
    lookup = _Labels({"env": "prod"})
    body = review(workload("Pod", "p", "payments", pod_spec({"app": SIGNED})))
    _, response = await run(body, decider_with_images(), settings, namespaces=lookup)
    assert response["allowed"] is False
    assert lookup.asked == ["payments"]


async def test_unknown_namespace_labels_require_digest() -> None:
    settings = parse_admission_settings(PROD_DIGEST)
    body = review(workload("Pod", "p", "payments", pod_spec({"app": SIGNED})))
    _, response = await run(body, decider_with_images(), settings, namespaces=_Labels(None))
    assert response["allowed"] is False
    assert "requires images by digest" in response["status"]["message"]


# -- budget and failures --------------------------------------------------------------------


async def test_budget_exceeded_denies_with_timeout_reason() -> None:
    decider = decider_with_images()
    decider.delays[SIGNED] = 5.0
    body = review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED})))
    started = time.monotonic()
    status, response = await run(body, decider, budget=0.3)
    elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < 1.0
    assert response["allowed"] is False
    assert (
        f'container "app" image {SIGNED}: timed out after 0.3 s waiting for the decision '
        "(admission.failureMode: deny)"
    ) in response["status"]["message"]


async def test_budget_from_settings() -> None:
    settings = parse_admission_settings({"budgetSeconds": 0.2})
    decider = decider_with_images()
    decider.delays[SIGNED] = 5.0
    started = time.monotonic()
    _, response = await run(
        review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), decider, settings
    )
    assert time.monotonic() - started < 1.0
    assert "timed out after 0.2 s" in response["status"]["message"]


async def test_failure_mode_allow_admits_with_warning() -> None:
    settings = parse_admission_settings({"failureMode": "allow"})
    decider = decider_with_images()
    decider.delays[SIGNED] = 5.0
    body = review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED, "b": UNSIGNED})))
    _, response = await run(body, decider, settings, budget=0.2)
    assert response["allowed"] is False  # the unsigned image is still denied
    assert UNSIGNED in response["status"]["message"]
    assert any("timed out after 0.2 s" in warning for warning in response["warnings"])

    alone = review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED})))
    _, response = await run(alone, decider, settings, budget=0.2)
    assert response["allowed"] is True
    assert "(admission.failureMode: allow)" in response["warnings"][0]


async def test_gate_timeout_verdict_carries_rule_choice() -> None:
    decider = FakeDecider()
    decider.verdicts[SIGNED] = ImageVerdict(
        SIGNED, None, False, False, "timed out fetching signatures from the upstream", True
    )
    _, response = await run(review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))), decider)
    assert response["allowed"] is False
    assert "timed out fetching signatures" in response["status"]["message"]


async def test_slow_and_fast_images_decided_concurrently() -> None:
    decider = decider_with_images()
    images = {f"c{index}": f"registry.example.com/team/app{index}:v1" for index in range(20)}
    for image in images.values():
        decider.allow(image)
        decider.delays[image] = 0.2
    started = time.monotonic()
    _, response = await run(review(workload("Pod", "p", "ns", pod_spec(images))), decider, budget=3)
    assert response["allowed"] is True
    assert time.monotonic() - started < 1.5


async def test_decider_errors_deny_without_crash() -> None:
    decider = decider_with_images()
    decider.errors[SIGNED] = RegwardError("upstream registry unavailable")
    decider.errors[UNSIGNED] = KeyError("boom")
    body = review(workload("Pod", "p", "ns", pod_spec({"a": SIGNED, "b": UNSIGNED})))
    status, response = await run(body, decider)
    assert status == 200
    message = response["status"]["message"]
    assert f"image {SIGNED}: decision failed: upstream registry unavailable" in message
    assert f"image {UNSIGNED}: decision failed with an internal error: KeyError" in message


async def test_too_many_images_denied() -> None:
    settings = parse_admission_settings({"maxImages": 2})
    spec = pod_spec({"a": "r.example/a:1", "b": "r.example/b:1", "c": "r.example/c:1"})
    decider = decider_with_images()
    _, response = await run(review(workload("Pod", "p", "ns", spec)), decider, settings)
    assert response["allowed"] is False
    assert (
        "names 3 distinct images, more than admission.maxImages (2)"
        in response["status"]["message"]
    )
    assert decider.calls == []


# -- malformed reviews ----------------------------------------------------------------------


def _review_dict(**request: Any) -> dict[str, Any]:
    base = json.loads(review(workload("Pod", "p", "ns", pod_spec({"app": SIGNED}))))
    base["request"].update(request)
    return base


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body: expected an admission.k8s.io/v1 AdmissionReview"),
        (b"{not json", "invalid AdmissionReview: "),
        (b"[]", "invalid AdmissionReview: body: Input should be an object"),
        (
            json.dumps({**_review_dict(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            "invalid AdmissionReview: apiVersion: Input should be 'admission.k8s.io/v1'",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "invalid AdmissionReview: request: Field required",
        ),
        (json.dumps(_review_dict(uid="")).encode(), "request.uid: String should have at least 1"),
        (
            json.dumps(_review_dict(operation="PATCH")).encode(),
            "request.operation: Input should be",
        ),
        (
            json.dumps(_review_dict(object="pod")).encode(),
            "request.object: Input should be an object",
        ),
        (
            json.dumps(_review_dict(object=None)).encode(),
            "request.object is missing for a CREATE of Pod",
        ),
        (
            json.dumps(_review_dict(object={"spec": {"containers": "nginx"}})).encode(),
            "Pod: spec.containers must be a list, got a string",
        ),
        (b"x" * (MAX_REVIEW_BYTES + 1), f"more than the maximum {MAX_REVIEW_BYTES}"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid AdmissionReview"),
    ],
)
async def test_malformed_review_gets_400(body: bytes, message: str) -> None:
    status, document = await run(body, decider_with_images())
    assert status == 400
    assert document["kind"] == "Status"
    assert document["code"] == 400
    assert document["reason"] == "BadRequest"
    assert message in document["message"]


# -- deployment records ---------------------------------------------------------------------


class _Recorder:
    """Collects the records that validate passes to the recorder."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.ended: list[tuple[str, str, str]] = []

    def record(
        self,
        namespace: str,
        kind: str,
        name: str,
        containers: Any,
        *,
        request_uid: str,
        at: datetime | None = None,
    ) -> None:
        self.records.append((namespace, kind, name, list(containers), request_uid))

    def end(self, namespace: str, kind: str, name: str, *, at: datetime | None = None) -> int:
        self.ended.append((namespace, kind, name))
        return 1


async def test_admitted_workload_recorded_with_decided_digest() -> None:
    recorder = _Recorder()
    body = review(workload("StatefulSet", "db", "shop", pod_spec({"db": SIGNED})), uid="u1")
    await run(body, decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert len(recorder.records) == 1
    namespace, kind, name, containers, uid = recorder.records[0]
    assert (namespace, kind, name, uid) == ("shop", "StatefulSet", "db", "u1")
    assert [(c.container, c.container_list, c.image, c.digest) for c in containers] == [
        ("db", "containers", SIGNED, DIGEST_A)
    ]


async def test_dry_run_evaluated_not_recorded() -> None:
    recorder = _Recorder()
    body = review(workload("Deployment", "web", "shop", pod_spec({"app": UNSIGNED})), dry_run=True)
    _, response = await run(body, decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert response["allowed"] is False
    body = review(workload("Deployment", "web", "shop", pod_spec({"app": SIGNED})), dry_run=True)
    _, response = await run(body, decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert response["allowed"] is True
    assert recorder.records == []


async def test_denied_workload_not_recorded() -> None:
    recorder = _Recorder()
    body = review(workload("Deployment", "web", "shop", pod_spec({"app": UNSIGNED})))
    await run(body, decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert recorder.records == []


async def test_controlled_pod_not_recorded() -> None:
    recorder = _Recorder()
    owner = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-5d8",
            "uid": "x",
            "controller": True,
        }
    ]
    pod = workload("Pod", "web-5d8-abcde", "shop", pod_spec({"app": SIGNED}), ownerReferences=owner)
    await run(review(pod), decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert recorder.records == []
    standalone = workload("Pod", "debug", "shop", pod_spec({"app": SIGNED}))
    await run(review(standalone), decider_with_images(), recorder=recorder)  # type: ignore[arg-type]
    assert [record[2] for record in recorder.records] == ["debug"]


async def test_delete_ends_records_unless_dry_run() -> None:
    recorder = _Recorder()
    old = workload("CronJob", "report", "shop", pod_spec({"app": SIGNED}))
    await run(
        review(None, operation="DELETE", old=old, kind="CronJob", dry_run=True),
        decider_with_images(),
        recorder=recorder,
    )  # type: ignore[arg-type]
    assert recorder.ended == []
    await run(
        review(None, operation="DELETE", old=old, kind="CronJob"),
        decider_with_images(),
        recorder=recorder,
    )  # type: ignore[arg-type]
    assert recorder.ended == [("shop", "CronJob", "report")]


def test_resources_cover_workload_kinds() -> None:
    assert set(WORKLOAD_KINDS) <= set(RESOURCES)


async def test_slow_namespace_lookup_stays_in_budget() -> None:
    settings = parse_admission_settings(PROD_DIGEST)
    body = review(workload("Pod", "p", "payments", pod_spec({"app": SIGNED})))
    started = time.monotonic()
    _, response = await run(
        body,
        decider_with_images(),
        settings,
        namespaces=_Labels({"env": "dev"}, delay=5),
        budget=0.3,
    )
    assert time.monotonic() - started < 1.0
    assert response["allowed"] is False
    assert "requires images by digest" in response["status"]["message"]
