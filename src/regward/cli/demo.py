"""`regward demo`: the gate in front of a local registry, with a signed and an unsigned image."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo on loopback",
        description="Start docker-registry and regward on loopback ports, push a signed and an "
        "unsigned image, and show one pull allowed and one denied.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the demo's files and print where")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from regward.demo import run_demo

    return run_demo(keep=args.keep)
