"""Kubernetes manifests that run regward in a cluster and register its admission webhooks.

`build_manifests` returns, in apply order: ServiceAccount, ClusterRole and ClusterRoleBinding
(read namespaces, for `namespaceLabelSource: kubernetes`), the ConfigMap when a policy is
given, Deployment, PodDisruptionBudget, Service, ValidatingWebhookConfiguration,
MutatingWebhookConfiguration, and optionally the Gatekeeper Provider and an example
ConstraintTemplate.

Choices that matter for a cluster:

- `failurePolicy: Fail` on the image webhooks, so an unreachable regward denies instead of
  letting unchecked images in. Two replicas and a PodDisruptionBudget keep it reachable.
- The webhooks skip regward's own namespace and `kube-system` through the
  `kubernetes.io/metadata.name` label, so regward can always restart and the control plane
  is never locked out.
- The validating webhook records deployments, which it skips for dry-run requests:
  `sideEffects: NoneOnDryRun`. The mutating webhook writes nothing: `sideEffects: None`.
- DELETE requests only end deployment records, so they go to a separate validating webhook
  with `failurePolicy: Ignore` that never blocks a deletion.
- `reinvocationPolicy: IfNeeded` pins images that a later mutating webhook adds.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import yaml

from regward import __version__
from regward.admission.asgi import MUTATE_PATH, PROVIDER_PATH, VALIDATE_PATH
from regward.admission.interface import AdmissionConfigError

APP_LABEL = "app.kubernetes.io/name"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
CONFIG_DIR = "/etc/regward/config"
TLS_DIR = "/etc/regward/tls"
DATA_DIR = "/var/lib/regward"

# Resources whose objects carry a pod spec, by API group, as webhook rules name them.
_RESOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "pods/ephemeralcontainers", "replicationcontrollers")),
    ("apps", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    ("batch", ("jobs", "cronjobs")),
)


@dataclass(frozen=True)
class ManifestOptions:
    """Installation settings for `build_manifests`."""

    namespace: str = "regward"
    service: str = "regward"
    """Name of the Service, Deployment and ServiceAccount."""

    ca_bundle: bytes | None = None
    """PEM of the CA that signed the serving certificate; None leaves `caBundle` out, so the
    API server falls back to its system trust roots."""

    image: str = f"regward:{__version__}"
    port: int = 8443
    """Container port regward listens on with TLS."""

    replicas: int = 2
    timeout_seconds: int = 10
    """Webhook `timeoutSeconds`; regward's review budget (default 8 s) must stay below it."""

    provider_timeout_seconds: int = 3
    """Gatekeeper Provider `timeout`; Gatekeeper's own webhook timeout defaults to 3 s."""

    tls_secret: str = ""
    """Secret of type kubernetes.io/tls with the serving certificate; default `<service>-tls`."""

    config_map: str = ""
    """ConfigMap with `config.yaml` and `policy.yaml`; default `<service>-config`."""

    policy_text: str | None = None
    """Policy file contents; when given, the ConfigMap is generated with it."""

    upstream: str | None = None
    """Upstream registry URL written into the generated `config.yaml`."""

    gatekeeper: bool = True
    """Whether to add the Gatekeeper Provider and example ConstraintTemplate."""

    @property
    def tls_secret_name(self) -> str:
        """The TLS Secret's name."""
        return self.tls_secret or f"{self.service}-tls"

    @property
    def config_map_name(self) -> str:
        """The ConfigMap's name."""
        return self.config_map or f"{self.service}-config"

    @property
    def cluster_name(self) -> str:
        """Name of cluster-scoped objects, qualified by namespace so installations differ."""
        return f"{self.service}.{self.namespace}"

    @property
    def service_host(self) -> str:
        """DNS name of the Service inside the cluster, as the serving certificate names it."""
        return f"{self.service}.{self.namespace}.svc"


def _labels(options: ManifestOptions) -> dict[str, str]:
    return {APP_LABEL: options.service, "app.kubernetes.io/part-of": "regward"}


def _metadata(options: ManifestOptions, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": _labels(options)}
    if namespaced:
        metadata["namespace"] = options.namespace
    return metadata


def _ca_bundle(options: ManifestOptions) -> dict[str, str]:
    if options.ca_bundle is None:
        return {}
    return {"caBundle": base64.b64encode(options.ca_bundle).decode("ascii")}


def _namespace_selector(options: ManifestOptions) -> dict[str, Any]:
    skipped = sorted({options.namespace, "kube-system"})
    return {
        "matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": skipped},
        ]
    }


def _rules(operations: list[str], *, subresources: bool) -> list[dict[str, Any]]:
    rules = []
    for group, resources in _RESOURCES:
        names = [name for name in resources if subresources or "/" not in name]
        rules.append(
            {
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": operations,
                "resources": names,
                "scope": "Namespaced",
            }
        )
    return rules


def _client_config(options: ManifestOptions, path: str) -> dict[str, Any]:
    return {
        "service": {
            "namespace": options.namespace,
            "name": options.service,
            "path": path,
            "port": 443,
        },
        **_ca_bundle(options),
    }


def service_account(options: ManifestOptions) -> dict[str, Any]:
    """Build the ServiceAccount the regward pods run as."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(options, options.service),
    }


def cluster_role(options: ManifestOptions) -> dict[str, Any]:
    """Build the ClusterRole that reads namespaces, for namespace label selectors."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _metadata(options, options.cluster_name, namespaced=False),
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
    }


def cluster_role_binding(options: ManifestOptions) -> dict[str, Any]:
    """Build the binding of the namespace reader role to regward's ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(options, options.cluster_name, namespaced=False),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": options.cluster_name,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": options.service, "namespace": options.namespace}
        ],
    }


def config_map(options: ManifestOptions) -> dict[str, Any]:
    """Build the ConfigMap with `config.yaml` and `policy.yaml` from `options.policy_text`.

    Raises:
        AdmissionConfigError: `options.upstream` is missing.
    """
    if not options.upstream:
        raise AdmissionConfigError("a generated config.yaml needs the upstream registry URL")
    config = {
        "upstream": options.upstream,
        "policy": f"{CONFIG_DIR}/policy.yaml",
        "admission": {"namespaceLabelSource": "kubernetes"},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(options, options.config_map_name),
        "data": {
            "config.yaml": yaml.safe_dump(config, sort_keys=False),
            "policy.yaml": options.policy_text or "",
        },
    }


def deployment(options: ManifestOptions) -> dict[str, Any]:
    """Build the Deployment that runs `regward serve` with TLS on `options.port`."""
    probe = {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}}
    container = {
        "name": "regward",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "serve",
            "--config",
            f"{CONFIG_DIR}/config.yaml",
            "--listen",
            f"0.0.0.0:{options.port}",
            "--tls-cert",
            f"{TLS_DIR}/tls.crt",
            "--tls-key",
            f"{TLS_DIR}/tls.key",
        ],
        "workingDir": DATA_DIR,
        "ports": [{"name": "https", "containerPort": options.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }
    pod_spec = {
        "serviceAccountName": options.service,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {APP_LABEL: options.service}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": options.config_map_name}},
            {"name": "tls", "secret": {"secretName": options.tls_secret_name}},
            {"name": "data", "emptyDir": {}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options, options.service),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": {APP_LABEL: options.service}},
            "template": {"metadata": {"labels": _labels(options)}, "spec": pod_spec},
        },
    }


def pod_disruption_budget(options: ManifestOptions) -> dict[str, Any]:
    """Build the PodDisruptionBudget that keeps one replica up, because the webhooks fail closed."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(options, options.service),
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": {APP_LABEL: options.service}},
        },
    }


def service(options: ManifestOptions) -> dict[str, Any]:
    """Build the Service that the API server and Gatekeeper call, on port 443."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(options, options.service),
        "spec": {
            "selector": {APP_LABEL: options.service},
            "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
        },
    }


def validating_webhook_configuration(options: ManifestOptions) -> dict[str, Any]:
    """Build the webhooks that check images on CREATE and UPDATE and end records on DELETE."""
    common = {
        "admissionReviewVersions": ["v1"],
        "matchPolicy": "Equivalent",
        "namespaceSelector": _namespace_selector(options),
        "sideEffects": "NoneOnDryRun",
    }
    images = {
        "name": f"images.{options.service_host}",
        "clientConfig": _client_config(options, VALIDATE_PATH),
        "rules": _rules(["CREATE", "UPDATE"], subresources=True),
        "failurePolicy": "Fail",
        "timeoutSeconds": options.timeout_seconds,
        **common,
    }
    records = {
        "name": f"records.{options.service_host}",
        "clientConfig": _client_config(options, VALIDATE_PATH),
        "rules": _rules(["DELETE"], subresources=False),
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        **common,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _metadata(options, options.cluster_name, namespaced=False),
        "webhooks": [images, records],
    }


def mutating_webhook_configuration(options: ManifestOptions) -> dict[str, Any]:
    """Build the webhook that rewrites allowed tag references to the decided digest."""
    webhook = {
        "name": f"digests.{options.service_host}",
        "clientConfig": _client_config(options, MUTATE_PATH),
        "rules": _rules(["CREATE", "UPDATE"], subresources=True),
        "failurePolicy": "Fail",
        "timeoutSeconds": options.timeout_seconds,
        "admissionReviewVersions": ["v1"],
        "matchPolicy": "Equivalent",
        "namespaceSelector": _namespace_selector(options),
        "sideEffects": "None",
        "reinvocationPolicy": "IfNeeded",
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _metadata(options, options.cluster_name, namespaced=False),
        "webhooks": [webhook],
    }


def gatekeeper_provider(options: ManifestOptions) -> dict[str, Any]:
    """Build the Gatekeeper external data Provider that points at regward."""
    return {
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "Provider",
        "metadata": _metadata(options, options.cluster_name, namespaced=False),
        "spec": {
            "url": f"https://{options.service_host}:443{PROVIDER_PATH}",
            "timeout": options.provider_timeout_seconds,
            **_ca_bundle(options),
        },
    }


CONSTRAINT_KIND = "RegwardImages"
"""Kind of the constraints that the example ConstraintTemplate defines."""


def constraint_template_rego(provider_name: str) -> str:
    """Return the Rego of the example ConstraintTemplate, calling the provider `provider_name`.

    The module uses the `future.keywords` imports, so it parses as Rego v0 (OPA 0.42 and later)
    and as Rego v1.
    """
    return f"""package regwardimages

import future.keywords.contains
import future.keywords.if
import future.keywords.in

template_kinds := {{
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job",
}}

pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if obj.kind in template_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

images contains container.image if {{
    spec := pod_spec(input.review.object)
    some field in ["containers", "initContainers", "ephemeralContainers"]
    some container in spec[field]
}}

response := external_data({{"provider": "{provider_name}", "keys": keys}}) if {{
    keys := sort([image | some image in images])
    count(keys) > 0
}}

violation contains {{"msg": msg}} if {{
    response.status_code != 200
    msg := sprintf("regward provider answered HTTP %v: %v", [
        response.status_code, response.system_error,
    ])
}}

violation contains {{"msg": msg}} if {{
    response.system_error != ""
    msg := sprintf("regward provider error: %v", [response.system_error])
}}

violation contains {{"msg": msg}} if {{
    some error in response.errors
    msg := sprintf("image %v: %v", [error[0], error[1]])
}}

violation contains {{"msg": msg}} if {{
    some item in response.responses
    item[1].allowed == false
    msg := sprintf("image %v denied by regward: %v", [item[0], item[1].reason])
}}
"""


def constraint_template(options: ManifestOptions) -> dict[str, Any]:
    """Build an example ConstraintTemplate that denies objects with images regward denies."""
    return {
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {"name": CONSTRAINT_KIND.lower(), "labels": _labels(options)},
        "spec": {
            "crd": {"spec": {"names": {"kind": CONSTRAINT_KIND}}},
            "targets": [
                {
                    "target": "admission.k8s.gatekeeper.sh",
                    "rego": constraint_template_rego(options.cluster_name),
                }
            ],
        },
    }


def build_manifests(options: ManifestOptions) -> list[dict[str, Any]]:
    """Return every manifest for `options`, in the order they can be applied.

    Raises:
        AdmissionConfigError: a policy is given without the upstream registry URL.
    """
    manifests = [
        service_account(options),
        cluster_role(options),
        cluster_role_binding(options),
    ]
    if options.policy_text is not None:
        manifests.append(config_map(options))
    manifests += [
        deployment(options),
        pod_disruption_budget(options),
        service(options),
        validating_webhook_configuration(options),
        mutating_webhook_configuration(options),
    ]
    if options.gatekeeper:
        manifests += [gatekeeper_provider(options), constraint_template(options)]
    return manifests
