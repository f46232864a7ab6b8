"""The `admission` section: defaults, perimeter matching, label selectors and errors."""

from __future__ import annotations

import pytest

from regward.admission.config import (
    DEFAULT_BUDGET_SECONDS,
    AdmissionSettings,
    FailureMode,
    NamespaceLabelSource,
    parse_admission_settings,
)
from regward.admission.interface import AdmissionConfigError
from regward.oci.reference import parse_reference


def test_defaults_when_section_missing() -> None:
    settings = parse_admission_settings(None)
    assert settings == AdmissionSettings()
    assert settings.budget_seconds == DEFAULT_BUDGET_SECONDS == 8.0
    assert settings.failure_mode is FailureMode.DENY
    assert settings.allowed_registries == ()
    assert settings.registry_allowed(parse_reference("nginx:1.25"))
    assert not settings.digest_required({"environment": "production"})


def test_full_section_parses() -> None:
    settings = parse_admission_settings(
        {
            "allowedRegistries": ["registry.example.com:5000", "ghcr.io/example-org"],
            "requireDigest": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
            "failureMode": "allow",
            "budgetSeconds": 5,
            "namespaceLabelSource": "kubernetes",
            "namespaceLabels": {"payments": {"env": "prod"}},
            "maxImages": 10,
        }
    )
    assert [str(entry) for entry in settings.allowed_registries] == [
        "registry.example.com:5000",
        "ghcr.io/example-org",
    ]
    assert settings.failure_mode is FailureMode.ALLOW
    assert settings.budget_seconds == 5
    assert settings.namespace_label_source is NamespaceLabelSource.KUBERNETES
    assert settings.namespace_labels == {"payments": {"env": "prod"}}
    assert settings.max_images == 10


@pytest.mark.parametrize(
    ("reference", "allowed"),
    [
        ("registry.example.com:5000/team/app:v1", True),
        ("REGISTRY.example.com:5000/team/app@sha256:" + "a" * 64, True),
        ("registry.example.com/team/app:v1", False),  # no port: another registry
        ("ghcr.io/example-org/tool:1", True),
        ("ghcr.io/example-org:1", True),
        ("ghcr.io/example-org-evil/tool:1", False),  # prefix must end on a segment
        ("ghcr.io/other/tool:1", False),
        ("nginx:1.25", False),
    ],
)
def test_allowed_registries_match(reference: str, allowed: bool) -> None:
    settings = parse_admission_settings(
        {"allowedRegistries": ["registry.example.com:5000", "ghcr.io/example-org"]}
    )
    assert settings.registry_allowed(parse_reference(reference)) is allowed


def test_docker_hub_aliases_fold() -> None:
    settings = parse_admission_settings({"allowedRegistries": ["index.docker.io/library"]})
    assert settings.registry_allowed(parse_reference("nginx:1.25"))
    assert settings.registry_allowed(parse_reference("docker.io/library/busybox"))
    assert not settings.registry_allowed(parse_reference("docker.io/someone/busybox"))


@pytest.mark.parametrize(
    ("selector", "labels", "required"),
    [
        ({}, {}, True),
        ({"matchLabels": {"env": "prod"}}, {"env": "prod", "team": "a"}, True),
        ({"matchLabels": {"env": "prod"}}, {"env": "dev"}, False),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]},
            {"env": "stage"},
            True,
        ),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
            {"env": "dev"},
            False,
        ),
        ({"matchExpressions": [{"key": "pci", "operator": "Exists"}]}, {"pci": ""}, True),
        ({"matchExpressions": [{"key": "pci", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "dev", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "dev", "operator": "DoesNotExist"}]}, {"dev": "1"}, False),
        (
            {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            {"env": "prod"},
            False,
        ),
    ],
)
def test_require_digest_selectors(
    selector: dict[str, object], labels: dict[str, str], required: bool
) -> None:
    settings = parse_admission_settings({"requireDigest": [{"namespaceSelector": selector}]})
    assert settings.digest_required(labels) is required


def test_unknown_labels_require_digest() -> None:
    settings = parse_admission_settings(
        {"requireDigest": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]}
    )
    assert settings.digest_required(None)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"allowedRegistry": []}, r"admission\.allowedRegistry: Extra inputs are not permitted"),
        ({"budgetSeconds": 30}, r"admission\.budgetSeconds: Input should be less than or equal"),
        ({"budgetSeconds": 0}, r"admission\.budgetSeconds: Input should be greater than 0"),
        ({"failureMode": "warn"}, r"admission\.failureMode: Input should be 'deny' or 'allow'"),
        ({"allowedRegistries": ["bad host!"]}, r"admission\.allowedRegistries\[0\]: invalid"),
        ({"allowedRegistries": ["ghcr.io/Upper"]}, r"admission\.allowedRegistries\[0\]: invalid"),
        (
            {
                "requireDigest": [
                    {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}
                ]
            },
            r"admission\.requireDigest\[0\]\.namespaceSelector\.matchExpressions\[0\]: "
            r"operator In needs a non-empty values list",
        ),
        (
            {
                "requireDigest": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {"key": "env", "operator": "Exists", "values": ["x"]}
                            ]
                        }
                    }
                ]
            },
            r"operator Exists takes no values",
        ),
        (
            {
                "requireDigest": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]
                        }
                    }
                ]
            },
            r"admission\.requireDigest\[0\]\.namespaceSelector\.matchExpressions\[0\]\.operator",
        ),
        (
            {"requireDigest": [{}]},
            r"admission\.requireDigest\[0\]\.namespaceSelector: Field required",
        ),
    ],
)
def test_invalid_section_names_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(AdmissionConfigError, match=message):
        parse_admission_settings(section)


def test_section_must_be_mapping() -> None:
    with pytest.raises(AdmissionConfigError, match="admission: expected a mapping, got list"):
        parse_admission_settings(["x"])  # type: ignore[arg-type]
