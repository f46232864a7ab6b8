"""`regward export containers-policy`: the policy as containers-policy.json and registries.d."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_ERROR, EXIT_OK

DEFAULT_REGISTRY = "127.0.0.1:5050"
"""The gate's default listen address, used when no --registry is given."""


def register(subparsers: Any) -> None:
    """Add the `export` subcommand and its `containers-policy` format."""
    parser = subparsers.add_parser(
        "export",
        help="export the policy for other enforcement points",
        description="Export the policy in the format of another enforcement point.",
    )
    formats = parser.add_subparsers(dest="export_format", metavar="FORMAT")
    containers = formats.add_parser(
        "containers-policy",
        help="policy.json and registries.d for podman, CRI-O, skopeo and buildah",
        description=(
            "Write DIR/policy.json (containers-policy.json(5)) and "
            "DIR/registries.d/regward.yaml (containers-registries.d(5)) that make "
            "containers/image require the same key-based signatures as the policy, for the "
            "same repositories on each --registry. Rule features without a counterpart are "
            "listed on stderr; globs without a policy.json scope stop the export unless "
            "--skip-unsupported is given. Exit 0 on success, 2 on error."
        ),
    )
    containers.add_argument("--policy", required=True, help="regward policy file (YAML)")
    containers.add_argument("--output", required=True, metavar="DIR", help="output folder")
    containers.add_argument(
        "--registry",
        action="append",
        metavar="HOST",
        help="host[:port] that clients pull these repositories from; repeat for several "
        f"(default: REGWARD_REGISTRY or {DEFAULT_REGISTRY}, the gate's default address)",
    )
    containers.add_argument(
        "--key-dir",
        metavar="PATH",
        help="reference keys as files under this absolute path (keyPath) instead of inline "
        "(keyData); the key files are written to DIR/keys for you to install there",
    )
    containers.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="write the files even when some globs or features have no policy.json form",
    )
    containers.set_defaults(handler=run_containers_policy)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def run_containers_policy(args: argparse.Namespace) -> int:
    """Write the files; exit 0, or 2 when the policy cannot be exported as asked."""
    from regward.admission.containers_policy import (
        export_containers_policy,
        write_containers_policy,
    )
    from regward.policy.load import load_policy

    registries = args.registry or [os.environ.get("REGWARD_REGISTRY", DEFAULT_REGISTRY)]
    key_dir = Path(args.key_dir) if args.key_dir else None
    if key_dir is not None and not key_dir.is_absolute():
        print(f"error: --key-dir must be an absolute path, got {args.key_dir}", file=sys.stderr)
        return EXIT_ERROR

    policy = load_policy(args.policy)
    exported = export_containers_policy(policy, registries, key_dir=key_dir)
    blocking = [note for note in exported.notes if note.blocking]
    for note in exported.notes:
        label = "unsupported" if note.blocking else "note"
        print(f"{label}: {note}", file=sys.stderr)
    if blocking and not args.skip_unsupported:
        print(
            f"error: {len(blocking)} parts of the policy have no containers-policy.json form; "
            "nothing was written (use --skip-unsupported to write the rest)",
            file=sys.stderr,
        )
        return EXIT_ERROR

    for path in write_containers_policy(exported, Path(args.output)):
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK
