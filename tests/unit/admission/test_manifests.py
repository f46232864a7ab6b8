"""`regward kubernetes manifests`: schema validation and the settings a cluster depends on.

Kubernetes kinds are validated against the strict JSON schemas of the `kubernetes-validate`
package, which are generated from the Kubernetes OpenAPI documents. Strict means that unknown
fields fail. Both the oldest and the newest Kubernetes version it ships are checked. The
Gatekeeper Provider and ConstraintTemplate are validated against their CRD schemas in
`schemas/`, closed the same way.
The ConstraintTemplate's Rego is evaluated with regopy, with `external_data` replaced by the
response of regward's provider, converted the way Gatekeeper hands it to Rego.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import regopy
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regward.admission.gatekeeper import provider
from regward.admission.manifests import ManifestOptions, build_manifests, constraint_template_rego
from regward.cli.main import main
from tests.unit.admission.reviews import FakeDecider, pod_spec, workload

SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


def make_ca(tmp_path: Path) -> tuple[Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regward test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    path = tmp_path / "ca.pem"
    path.write_bytes(pem)
    return path, pem


@pytest.fixture
def printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[list[dict[str, Any]], bytes]:
    ca_path, pem = make_ca(tmp_path)
    code = main(
        [
            "kubernetes",
            "manifests",
            "--namespace",
            "regward",
            "--service",
            "regward",
            "--ca-bundle",
            str(ca_path),
        ]
    )
    assert code == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    return documents, pem


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [document for document in documents if document["kind"] == kind]
    assert len(matches) == 1, kind
    return matches[0]


def closed(schema: Any) -> Any:
    """Reject unknown fields wherever a CRD schema lists properties without preserving others."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in result and not result.get("x-kubernetes-preserve-unknown-fields"):
        result.setdefault("additionalProperties", False)
    return result


def test_prints_every_kind(printed: tuple[list[dict[str, Any]], bytes]) -> None:
    documents, _ = printed
    assert [document["kind"] for document in documents] == [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Provider",
        "ConstraintTemplate",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_pass_strict_schemas(
    printed: tuple[list[dict[str, Any]], bytes], version: str
) -> None:
    documents, _ = printed
    checked = 0
    for document in documents:
        if document["apiVersion"].endswith("gatekeeper.sh/v1beta1") or document[
            "apiVersion"
        ].startswith("templates."):
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked == 8


def test_schema_check_rejects_mistakes(printed: tuple[list[dict[str, Any]], bytes]) -> None:
    documents, _ = printed
    webhook_configuration = json.loads(
        json.dumps(by_kind(documents, "ValidatingWebhookConfiguration"))
    )
    webhook_configuration["webhooks"][0]["failurePolcy"] = "Fail"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(webhook_configuration, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = json.loads(json.dumps(by_kind(documents, "Deployment")))
    del deployment["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    ("kind", "schema_file"),
    [("Provider", "provider-v1beta1.json"), ("ConstraintTemplate", "constrainttemplate-v1.json")],
)
def test_gatekeeper_kinds_pass_crd_schemas(
    printed: tuple[list[dict[str, Any]], bytes], kind: str, schema_file: str
) -> None:
    documents, _ = printed
    schema = closed(json.loads((SCHEMAS / schema_file).read_text()))
    document = by_kind(documents, kind)
    jsonschema.validate(document, schema)
    broken = {**document, "spec": {**document["spec"], "unknownField": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_webhooks_fail_closed_and_skip_own_namespace(
    printed: tuple[list[dict[str, Any]], bytes],
) -> None:
    documents, pem = printed
    validating = by_kind(documents, "ValidatingWebhookConfiguration")["webhooks"]
    mutating = by_kind(documents, "MutatingWebhookConfiguration")["webhooks"]
    images, records = validating
    digests = mutating[0]
    ca_bundle = base64.b64encode(pem).decode()
    skip = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "regward"],
            }
        ]
    }
    for webhook in (images, records, digests):
        assert webhook["clientConfig"]["caBundle"] == ca_bundle
        assert webhook["clientConfig"]["service"]["namespace"] == "regward"
        assert webhook["clientConfig"]["service"]["name"] == "regward"
        assert webhook["clientConfig"]["service"]["port"] == 443
        assert webhook["namespaceSelector"] == skip
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["name"].count(".") >= 2  # the API server requires a qualified name

    assert images["clientConfig"]["service"]["path"] == "/admission/validate"
    assert images["failurePolicy"] == "Fail"
    assert images["timeoutSeconds"] == 10
    assert images["sideEffects"] == "NoneOnDryRun"
    assert {op for rule in images["rules"] for op in rule["operations"]} == {"CREATE", "UPDATE"}
    resources = {
        (rule["apiGroups"][0], name) for rule in images["rules"] for name in rule["resources"]
    }
    assert resources == {
        ("", "pods"),
        ("", "pods/ephemeralcontainers"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }

    assert records["failurePolicy"] == "Ignore"
    assert {op for rule in records["rules"] for op in rule["operations"]} == {"DELETE"}

    assert digests["clientConfig"]["service"]["path"] == "/admission/mutate"
    assert digests["failurePolicy"] == "Fail"
    assert digests["sideEffects"] == "None"
    assert digests["timeoutSeconds"] == 10
    assert digests["reinvocationPolicy"] == "IfNeeded"


def test_deployment_serves_tls_on_service_port(printed: tuple[list[dict[str, Any]], bytes]) -> None:
    documents, _ = printed
    deployment = by_kind(documents, "Deployment")
    service = by_kind(documents, "Service")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert deployment["metadata"]["namespace"] == "regward"
    assert deployment["spec"]["replicas"] == 2
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert container["args"][:3] == ["serve", "--config", "/etc/regward/config/config.yaml"]
    assert "--tls-cert" in container["args"]
    assert "--tls-key" in container["args"]
    assert container["ports"][0]["containerPort"] == 8443
    assert service["spec"]["ports"][0] == {
        "name": "https",
        "port": 443,
        "targetPort": "https",
        "protocol": "TCP",
    }
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "regward-tls"
    assert volumes["config"]["configMap"]["name"] == "regward-config"
    binding = by_kind(documents, "ClusterRoleBinding")
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "regward",
        "namespace": "regward",
    }
    assert pod["spec"]["serviceAccountName"] == "regward"


def test_provider_points_at_service(printed: tuple[list[dict[str, Any]], bytes]) -> None:
    documents, pem = printed
    spec = by_kind(documents, "Provider")["spec"]
    assert spec["url"] == "https://regward.regward.svc:443/gatekeeper/provider"
    assert base64.b64decode(spec["caBundle"]) == pem
    assert spec["timeout"] == 3


def test_other_namespace_and_generated_config_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaultAction: deny\nrules: []\n")
    code = main(
        [
            "kubernetes",
            "manifests",
            "--namespace",
            "kube-system",
            "--service",
            "gate",
            "--policy",
            str(policy),
            "--upstream",
            "http://registry.internal:5000",
            "--no-gatekeeper",
            "--image",
            "registry.internal/regward:1",
        ]
    )
    assert code == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [document["kind"] for document in documents]
    assert "Provider" not in kinds
    config_map = by_kind(documents, "ConfigMap")
    assert config_map["data"]["policy.yaml"] == "defaultAction: deny\nrules: []\n"
    assert (
        yaml.safe_load(config_map["data"]["config.yaml"])["upstream"]
        == "http://registry.internal:5000"
    )
    webhook = by_kind(documents, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system"]
    assert "caBundle" not in webhook["clientConfig"]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--timeout-seconds", "31"], "--timeout-seconds must be 1-30"),
        (["--policy", "p.yaml"], "--policy needs --upstream"),
        (["--namespace", "Bad_NS"], "invalid --namespace 'Bad_NS'"),
        (["--ca-bundle", "/nonexistent/ca.pem"], "cannot read --ca-bundle"),
    ],
)
def test_invalid_options(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kubernetes", "manifests", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_ca_bundle_must_be_pem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate")
    assert main(["kubernetes", "manifests", "--ca-bundle", str(path)]) == 2
    assert "is not a PEM certificate bundle" in capsys.readouterr().err


# -- the ConstraintTemplate's Rego ----------------------------------------------------------


async def rego_response(keys: list[str], decider: FakeDecider) -> dict[str, Any]:
    """Call regward's provider and shape its response as Gatekeeper's external_data returns it."""
    body = json.dumps(
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": keys},
        }
    ).encode()
    status, payload = await provider(body, decider)
    items = json.loads(payload)["response"]
    return {
        "responses": [
            [item["key"], item["value"]] for item in items["items"] if "error" not in item
        ],
        "errors": [[item["key"], item["error"]] for item in items["items"] if "error" in item],
        "status_code": status,
        "system_error": items.get("systemError", ""),
    }


def violations(document: dict[str, Any], external: dict[str, Any]) -> list[str]:
    interpreter = regopy.Interpreter()
    interpreter.add_module("template.rego", constraint_template_rego("regward.regward"))
    # Stands in for Gatekeeper's external_data builtin, which regopy does not have.
    interpreter.add_module(
        "stub.rego",
        "package regwardimages\n\nimport future.keywords.if\n\n"
        'external_data(request) := data.external if request.provider == "regward.regward"\n',
    )
    interpreter.add_data_json(json.dumps({"external": external}))
    interpreter.set_input(regopy.Input({"review": {"object": document}}))
    output = interpreter.query("x = data.regwardimages.violation")
    result = json.loads(str(output))
    return sorted(item["msg"] for item in result["bindings"]["x"])


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "CronJob", "Job", "DaemonSet"])
async def test_rego_denies_unsigned_images(kind: str) -> None:
    signed, unsigned = "r.example/app:v1", "r.example/unsigned:v1"
    decider = FakeDecider()
    decider.allow(signed)
    decider.deny(unsigned, "no signature verified by authority 'ci'")
    document = workload(kind, "web", "shop", pod_spec({"app": signed}, init={"setup": unsigned}))
    external = await rego_response(sorted([signed, unsigned]), decider)
    assert violations(document, external) == [
        f"image {unsigned} denied by regward: no signature verified by authority 'ci'"
    ]


async def test_rego_allows_signed_and_reports_errors() -> None:
    decider = FakeDecider()
    decider.allow("r.example/app:v1")
    document = workload("Pod", "web", "shop", pod_spec({"app": "r.example/app:v1"}))
    assert violations(document, await rego_response(["r.example/app:v1"], decider)) == []
    bad = workload("Pod", "web", "shop", pod_spec({"app": "Bad Ref"}))
    messages = violations(bad, await rego_response(["Bad Ref"], decider))
    assert len(messages) == 1
    assert messages[0].startswith("image Bad Ref: invalid image reference")
    failing = {
        "responses": [],
        "errors": [],
        "status_code": 500,
        "system_error": "connection refused",
    }
    assert violations(document, failing) == [
        "regward provider answered HTTP 500: connection refused",
        "regward provider error: connection refused",
    ]


def test_manifest_options_defaults() -> None:
    documents = build_manifests(ManifestOptions())
    assert all("regward" in json.dumps(document) for document in documents)
