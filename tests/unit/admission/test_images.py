"""Image extraction from Pods and pod templates, with JSON pointers."""

from __future__ import annotations

from typing import Any

import pytest

from regward.admission.images import extract_images, is_supported, json_pointer
from regward.admission.interface import MalformedReviewError
from tests.unit.admission.reviews import (
    POD_SPEC_POINTER,
    RESOURCES,
    WORKLOAD_KINDS,
    pod_spec,
    workload,
)


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_kind_yields_all_container_lists(kind: str) -> None:
    spec = pod_spec(
        {"app": "registry.example.com/app:v1", "sidecar": "registry.example.com/proxy:2"},
        init={"migrate": "registry.example.com/migrate:v1"},
        ephemeral={"debugger": "busybox:1.36"},
    )
    document = workload(kind, "web", "shop", spec)
    group = RESOURCES[kind][0]

    images = extract_images(group, kind, document)

    base = POD_SPEC_POINTER[kind]
    assert [
        (image.container_list, image.container, image.image, image.pointer) for image in images
    ] == [
        ("containers", "app", "registry.example.com/app:v1", f"{base}/containers/0/image"),
        ("containers", "sidecar", "registry.example.com/proxy:2", f"{base}/containers/1/image"),
        (
            "initContainers",
            "migrate",
            "registry.example.com/migrate:v1",
            f"{base}/initContainers/0/image",
        ),
        ("ephemeralContainers", "debugger", "busybox:1.36", f"{base}/ephemeralContainers/0/image"),
    ]


def test_describe_names_container_list() -> None:
    spec = pod_spec({"app": "a:1"}, init={"setup": "b:1"})
    images = extract_images("", "Pod", workload("Pod", "p", "ns", spec))
    assert [image.describe() for image in images] == ['container "app"', 'initContainer "setup"']


def test_supported_kinds() -> None:
    assert all(is_supported(RESOURCES[kind][0], kind) for kind in WORKLOAD_KINDS)
    assert not is_supported("", "ConfigMap")
    assert not is_supported("extensions", "Deployment")


def test_missing_template_yields_nothing() -> None:
    document: dict[str, Any] = {"kind": "ReplicationController", "spec": {"replicas": 1}}
    assert extract_images("", "ReplicationController", document) == []


def test_container_without_image_is_skipped() -> None:
    document = {"spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    assert extract_images("apps", "Deployment", document) == []


def test_pointer_escapes_special_characters() -> None:
    assert json_pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"spec": []}, r"Pod: spec must be an object, got a list"),
        (
            {"spec": {"containers": {"name": "x"}}},
            r"Pod: spec\.containers must be a list, got an object",
        ),
        (
            {"spec": {"containers": ["nginx"]}},
            r"Pod: spec\.containers\[0\] must be an object, got a string",
        ),
        (
            {"spec": {"containers": [{"name": "a", "image": 5}]}},
            r"spec\.containers\[0\]\.image must be a string, got a number",
        ),
        (
            {"spec": {"containers": [{"name": ["a"], "image": "x"}]}},
            r"spec\.containers\[0\]\.name must be a string",
        ),
    ],
)
def test_wrong_types_are_malformed(document: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedReviewError, match=message):
        extract_images("", "Pod", document)


def test_unsupported_kind_raises() -> None:
    with pytest.raises(MalformedReviewError, match="objects of kind ConfigMap have no pod spec"):
        extract_images("", "ConfigMap", {})
