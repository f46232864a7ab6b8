"""`regward kubernetes manifests`: print the manifests that install regward's admission webhooks."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from regward.cli.main import EXIT_ERROR, EXIT_OK

# Services need an RFC 1035 label; namespaces accept the same form.
_DNS_LABEL = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


def register(subparsers: Any) -> None:
    """Add the `kubernetes` subcommand and its `manifests` action."""
    parser = subparsers.add_parser(
        "kubernetes",
        help="Kubernetes integration: manifests for the admission webhooks",
        description="Kubernetes integration of regward.",
    )
    actions = parser.add_subparsers(dest="kubernetes_action", metavar="ACTION")
    manifests = actions.add_parser(
        "manifests",
        help="print the Deployment, Service, webhook configurations and Gatekeeper objects",
        description=(
            "Print, as one multi-document YAML stream, the objects that run regward in a cluster "
            "and register its validating and mutating webhooks (failurePolicy: Fail, skipping "
            "the regward namespace and kube-system), plus a Gatekeeper Provider and an example "
            "ConstraintTemplate. The serving certificate must name SERVICE.NAMESPACE.svc and be "
            "stored in the TLS Secret."
        ),
    )
    manifests.add_argument("--namespace", default="regward", help="namespace (default regward)")
    manifests.add_argument(
        "--service", default="regward", help="name of the Service and Deployment (default regward)"
    )
    manifests.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM file of the CA that signed the serving certificate, written as caBundle",
    )
    manifests.add_argument("--image", help="regward container image (default regward:VERSION)")
    manifests.add_argument(
        "--port", type=int, default=8443, help="container port for HTTPS (default 8443)"
    )
    manifests.add_argument(
        "--replicas", type=int, default=2, help="Deployment replicas (default 2)"
    )
    manifests.add_argument(
        "--timeout-seconds",
        type=int,
        default=10,
        help="webhook timeoutSeconds, 1-30 (default 10); keep admission.budgetSeconds below it",
    )
    manifests.add_argument(
        "--tls-secret", default="", help="TLS Secret with tls.crt and tls.key (default SERVICE-tls)"
    )
    manifests.add_argument(
        "--config-map",
        default="",
        help="ConfigMap with config.yaml and policy.yaml (default SERVICE-config)",
    )
    manifests.add_argument(
        "--policy",
        metavar="FILE",
        help="policy file to put in a generated ConfigMap (needs --upstream); without it the "
        "ConfigMap must exist already",
    )
    manifests.add_argument("--upstream", help="upstream registry URL for the generated config.yaml")
    manifests.add_argument(
        "--no-gatekeeper",
        action="store_true",
        help="leave out the Gatekeeper Provider and ConstraintTemplate",
    )
    manifests.set_defaults(handler=run_manifests)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _read_ca_bundle(path: str) -> bytes:
    from cryptography import x509

    from regward.admission.interface import AdmissionConfigError

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AdmissionConfigError(f"cannot read --ca-bundle {path}: {exc.strerror}") from exc
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise AdmissionConfigError(
            f"--ca-bundle {path} is not a PEM certificate bundle: {exc}"
        ) from exc
    return data


def _read_policy(path: str) -> str:
    from regward.admission.interface import AdmissionConfigError

    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdmissionConfigError(f"cannot read --policy {path}: {exc}") from exc


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (Rego, embedded YAML) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def run_manifests(args: argparse.Namespace) -> int:
    """Print the manifests; exit 0, or 2 for invalid options."""
    from regward.admission.manifests import ManifestOptions, build_manifests

    if not 1 <= args.timeout_seconds <= 30:
        print(f"error: --timeout-seconds must be 1-30, got {args.timeout_seconds}", file=sys.stderr)
        return EXIT_ERROR
    if args.policy and not args.upstream:
        print("error: --policy needs --upstream for the generated config.yaml", file=sys.stderr)
        return EXIT_ERROR
    ca_bundle = _read_ca_bundle(args.ca_bundle) if args.ca_bundle else None
    if ca_bundle is None:
        print(
            "warning: no --ca-bundle: the API server will verify regward's certificate against "
            "its system trust roots",
            file=sys.stderr,
        )
    for option, value in (("--namespace", args.namespace), ("--service", args.service)):
        if not _DNS_LABEL.fullmatch(value):
            print(
                f"error: invalid {option} {value!r}: expected a DNS label (lower-case letters, "
                "digits and '-', at most 63 characters, starting with a letter)",
                file=sys.stderr,
            )
            return EXIT_ERROR
    policy_text = _read_policy(args.policy) if args.policy else None
    options = ManifestOptions(
        namespace=args.namespace,
        service=args.service,
        ca_bundle=ca_bundle,
        port=args.port,
        replicas=args.replicas,
        timeout_seconds=args.timeout_seconds,
        tls_secret=args.tls_secret,
        config_map=args.config_map,
        policy_text=policy_text,
        upstream=args.upstream,
        gatekeeper=not args.no_gatekeeper,
        **({"image": args.image} if args.image else {}),
    )
    documents = build_manifests(options)
    sys.stdout.write(
        yaml.dump_all(documents, Dumper=_LiteralDumper, sort_keys=False, explicit_start=True)
    )
    return EXIT_OK
