"""AdmissionReview requests shaped as kube-apiserver (admission.k8s.io/v1) sends them, and a fake
ImageDecider.

The objects carry the fields the API server fills in before calling webhooks (defaults such as
`terminationMessagePath`, `dnsPolicy`, `uid`, `creationTimestamp`, `managedFields`), so the
handlers see the same shape as in a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regward.admission.interface import ImageVerdict

# kind -> (group, version, resource)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "Pod": ("", "v1", "pods"),
    "ReplicationController": ("", "v1", "replicationcontrollers"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ConfigMap": ("", "v1", "configmaps"),
}

# Where the pod spec sits in each workload kind, as the handlers expect it.
POD_SPEC_POINTER = {
    "Pod": "/spec",
    "ReplicationController": "/spec/template/spec",
    "Deployment": "/spec/template/spec",
    "StatefulSet": "/spec/template/spec",
    "DaemonSet": "/spec/template/spec",
    "ReplicaSet": "/spec/template/spec",
    "Job": "/spec/template/spec",
    "CronJob": "/spec/jobTemplate/spec/template/spec",
}

WORKLOAD_KINDS = tuple(POD_SPEC_POINTER)


def container(name: str, image: str) -> dict[str, Any]:
    """A container as the API server stores it after defaulting."""
    return {
        "name": name,
        "image": image,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def pod_spec(
    containers: Mapping[str, str],
    *,
    init: Mapping[str, str] | None = None,
    ephemeral: Mapping[str, str] | None = None,
    restart_policy: str = "Always",
) -> dict[str, Any]:
    """A defaulted pod spec with the given containers (name -> image)."""
    spec: dict[str, Any] = {
        "containers": [container(name, image) for name, image in containers.items()],
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    }
    if init:
        spec["initContainers"] = [container(name, image) for name, image in init.items()]
    if ephemeral:
        spec["ephemeralContainers"] = [container(name, image) for name, image in ephemeral.items()]
    return spec


def metadata(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    """Object metadata with the server-set fields."""
    return {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "creationTimestamp": "2026-03-01T12:00:00Z",
        "labels": {"app": name},
        "managedFields": [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-03-01T12:00:00Z",
            }
        ],
        **extra,
    }


def workload(
    kind: str, name: str, namespace: str, spec: Mapping[str, Any], **meta: Any
) -> dict[str, Any]:
    """A Pod or workload object of `kind` whose pod spec is `spec`."""
    group, version, _ = RESOURCES[kind]
    api_version = f"{group}/{version}" if group else version
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": dict(spec)}
    selector = {"matchLabels": labels}
    body: dict[str, Any]
    if kind == "Pod":
        body = {"spec": dict(spec), "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    elif kind == "CronJob":
        job_spec = {"template": {**template, "spec": {**spec, "restartPolicy": "OnFailure"}}}
        body = {
            "spec": {
                "schedule": "*/5 * * * *",
                "concurrencyPolicy": "Allow",
                "suspend": False,
                "jobTemplate": {"metadata": {}, "spec": job_spec},
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
            }
        }
    elif kind == "Job":
        body = {
            "spec": {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": 6,
                "template": {**template, "spec": {**spec, "restartPolicy": "Never"}},
            }
        }
    elif kind == "ReplicationController":
        body = {"spec": {"replicas": 1, "selector": labels, "template": template}}
    elif kind == "DaemonSet":
        body = {
            "spec": {
                "selector": selector,
                "template": template,
                "updateStrategy": {"type": "RollingUpdate"},
            }
        }
    elif kind == "StatefulSet":
        body = {
            "spec": {
                "replicas": 1,
                "selector": selector,
                "serviceName": name,
                "template": template,
                "podManagementPolicy": "OrderedReady",
            }
        }
    else:
        body = {
            "spec": {
                "replicas": 1,
                "selector": selector,
                "template": template,
                "revisionHistoryLimit": 10,
            }
        }
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, namespace, **meta),
        **body,
    }


def review(
    document: Mapping[str, Any] | None,
    *,
    kind: str | None = None,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    uid: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    sub_resource: str | None = None,
    extra_request: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise an AdmissionReview request for `document` (None for DELETE)."""
    source = document if document is not None else old
    assert source is not None
    kind = kind or source["kind"]
    group, version, resource = RESOURCES[kind]
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(
        operation, "DeleteOptions"
    )
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name if name is not None else source["metadata"]["name"],
        "namespace": namespace if namespace is not None else source["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {
            "username": "kubernetes-admin",
            "groups": ["system:masters", "system:authenticated"],
        },
        "object": document,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    if extra_request:
        request.update(extra_request)
    return json.dumps(
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}
    ).encode()


def response_of(body: bytes) -> dict[str, Any]:
    """Return the `response` of an AdmissionReview body, checking the envelope."""
    document = json.loads(body)
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    response: dict[str, Any] = document["response"]
    return response


def patch_of(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Decode the JSONPatch of a mutating webhook response."""
    assert response["patchType"] == "JSONPatch"
    operations: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return operations


def apply_patch(document: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """Apply `test` and `replace` operations of RFC 6902 to a deep copy of `document`."""
    result = json.loads(json.dumps(document))
    for operation in operations:
        parts = [
            part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
        ]
        parent = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if operation["op"] == "test":
            assert parent[last] == operation["value"], operation
        elif operation["op"] == "replace":
            assert (last < len(parent)) if isinstance(parent, list) else (last in parent)
            parent[last] = operation["value"]
        else:
            raise AssertionError(f"unexpected patch operation {operation}")
    return result


DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@dataclass
class FakeDecider:
    """An ImageDecider that returns verdicts from a table, with optional delays and failures."""

    verdicts: dict[str, ImageVerdict] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    default_digest: str = DIGEST_A

    def allow(self, reference: str, digest: str | None = None) -> None:
        self.verdicts[reference] = ImageVerdict(
            reference, digest or self.default_digest, True, False, ""
        )

    def deny(self, reference: str, reason: str, digest: str | None = None) -> None:
        self.verdicts[reference] = ImageVerdict(
            reference, digest or self.default_digest, False, False, reason
        )

    def warn(self, reference: str, reason: str, digest: str | None = None) -> None:
        self.verdicts[reference] = ImageVerdict(
            reference, digest or self.default_digest, True, True, reason
        )

    async def decide_reference(self, reference: str) -> ImageVerdict:
        self.calls.append(reference)
        delay = self.delays.get(reference, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if reference in self.errors:
            raise self.errors[reference]
        verdict = self.verdicts.get(reference)
        if verdict is None:
            return ImageVerdict(
                reference, None, False, False, f"manifest {reference} not found in the registry"
            )
        return verdict


@contextlib.contextmanager
def keep_package_logger() -> Iterator[None]:
    """Restore the `regward` logger's handlers, level and propagation when the block ends.

    `regward.cli.main.main` installs its own handler and stops propagation, which would hide
    the package's logs from pytest's `caplog` in every later test.
    """
    package_logger = logging.getLogger("regward")
    handlers = list(package_logger.handlers)
    level = package_logger.level
    propagate = package_logger.propagate
    try:
        yield
    finally:
        package_logger.handlers[:] = handlers
        package_logger.setLevel(level)
        package_logger.propagate = propagate
