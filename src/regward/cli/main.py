"""Entry point of the `regward` command.

Each subcommand lives in its own module under `regward.cli` and exposes
`register(subparsers)`, which adds its parser and sets `handler` to a function
`handler(args: argparse.Namespace) -> int`. Exit codes: 0 success or allowed,
1 denied or a check that failed, 2 usage or infrastructure error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from regward import __version__
from regward.errors import RegwardError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_ERROR = 2

# Subcommand modules, in the order `regward --help` lists them. A module that is not
# importable (a missing optional dependency) is skipped with a debug log.
COMMAND_MODULES = (
    "regward.cli.serve",
    "regward.cli.check",
    "regward.cli.verify",
    "regward.cli.sign",
    "regward.cli.scan",
    "regward.cli.promote",
    "regward.cli.worker",
    "regward.cli.enroll",
    "regward.cli.feed",
    "regward.cli.token",
    "regward.cli.kubernetes",
    "regward.cli.deployments",
    "regward.cli.export",
    "regward.cli.trust",
    "regward.cli.audit",
    "regward.cli.demo",
)


def configure_logging(verbosity: int, log_format: str = "text", *, service: bool = False) -> None:
    """Configure the `regward` package logger from `-v` flags and REGWARD_LOGLEVEL.

    A long-running service (`serve`, `worker`) logs at INFO by default, so its starts, stops and
    denials are visible; one-shot commands log warnings only.
    """
    level_name = os.environ.get("REGWARD_LOGLEVEL")
    if level_name:
        level = logging.getLevelName(level_name.upper())
        if not isinstance(level, int):
            level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1 or service:
        level = logging.INFO
    else:
        level = logging.WARNING
    from regward.logs import install_handler

    install_handler(level, log_format)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand module that imports."""
    parser = argparse.ArgumentParser(
        prog="regward",
        description="Supply-chain policy gate for OCI registries.",
    )
    parser.add_argument("--version", action="version", version=f"regward {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("REGWARD_LOG_FORMAT", "text"),
        help="log line format (default: text, or REGWARD_LOG_FORMAT)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `regward` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_format, service=args.command in ("serve", "worker"))
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(handler(args))
    except RegwardError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
