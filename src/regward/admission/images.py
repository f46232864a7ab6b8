"""Find the container images of a Pod or a workload object, with JSON pointers for patching.

The pod spec sits at a fixed path for each supported kind:

| group/kind | pod spec |
|---|---|
| Pod | `spec` |
| ReplicationController | `spec.template.spec` |
| apps Deployment, StatefulSet, DaemonSet, ReplicaSet | `spec.template.spec` |
| batch Job | `spec.template.spec` |
| batch CronJob | `spec.jobTemplate.spec.template.spec` |

Images come from `containers`, `initContainers` and `ephemeralContainers`, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regward.admission.interface import MalformedReviewError

POD_SPEC_PATHS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Path of the pod spec inside each supported object, keyed by (API group, kind)."""

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
"""Pod spec fields that hold containers, each with an `image`."""

_SINGULAR = {
    "containers": "container",
    "initContainers": "initContainer",
    "ephemeralContainers": "ephemeralContainer",
}


@dataclass(frozen=True)
class PodImage:
    """One container image named in an object."""

    container: str
    """The container's name."""

    container_list: str
    """The pod spec field the container is in: `containers`, `initContainers` or
    `ephemeralContainers`."""

    image: str
    """The image reference exactly as the object spells it."""

    pointer: str
    """RFC 6901 JSON pointer to the `image` field, such as `/spec/containers/0/image`."""

    def describe(self) -> str:
        """Name the container for messages, such as `initContainer "migrate"`."""
        return f'{_SINGULAR[self.container_list]} "{self.container}"'


def is_supported(group: str, kind: str) -> bool:
    """Tell whether objects of this API group and kind carry a pod spec regward inspects."""
    return (group, kind) in POD_SPEC_PATHS


def json_pointer(parts: Sequence[str | int]) -> str:
    """Build an RFC 6901 JSON pointer, escaping `~` and `/` in each part."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def extract_images(group: str, kind: str, document: Mapping[str, Any]) -> list[PodImage]:
    """Return every container image of `document`, an object of the given group and kind.

    A missing pod spec or container list yields no images: Kubernetes allows a workload
    template without one, and the API server rejects such pods itself. A container without an
    `image` is skipped for the same reason, because workload templates may leave it to be
    filled in later and every pod is reviewed again when it is created.

    Raises:
        MalformedReviewError: the kind is not supported, or a field has the wrong JSON type.
    """
    path = POD_SPEC_PATHS.get((group, kind))
    if path is None:
        raise MalformedReviewError(f"objects of kind {_kind_name(group, kind)} have no pod spec")

    node: Any = document
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping):
            where = ".".join(path[:depth]) or "the object"
            raise MalformedReviewError(
                f"{_kind_name(group, kind)}: {where} must be an object, got {_json_type(node)}"
            )
        node = node.get(key)
        if node is None:
            return []
    if not isinstance(node, Mapping):
        raise MalformedReviewError(
            f"{_kind_name(group, kind)}: {'.'.join(path)} must be an object, got {_json_type(node)}"
        )

    images: list[PodImage] = []
    for list_name in CONTAINER_LISTS:
        containers = node.get(list_name)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise MalformedReviewError(
                f"{_kind_name(group, kind)}: {'.'.join(path)}.{list_name} must be a list, "
                f"got {_json_type(containers)}"
            )
        for index, container in enumerate(containers):
            where = f"{'.'.join(path)}.{list_name}[{index}]"
            if not isinstance(container, Mapping):
                raise MalformedReviewError(
                    f"{_kind_name(group, kind)}: {where} must be an object, "
                    f"got {_json_type(container)}"
                )
            image = container.get("image")
            name = container.get("name", "")
            if image is None or image == "":
                continue
            if not isinstance(image, str):
                raise MalformedReviewError(
                    f"{_kind_name(group, kind)}: {where}.image must be a string, "
                    f"got {_json_type(image)}"
                )
            if not isinstance(name, str):
                raise MalformedReviewError(
                    f"{_kind_name(group, kind)}: {where}.name must be a string, "
                    f"got {_json_type(name)}"
                )
            pointer = json_pointer([*path, list_name, index, "image"])
            images.append(PodImage(name, list_name, image, pointer))
    return images


def _kind_name(group: str, kind: str) -> str:
    return f"{group}/{kind}" if group else kind


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
