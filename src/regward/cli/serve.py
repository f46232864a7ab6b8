"""`regward serve`: run the gate in front of one upstream registry."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from regward.cli.main import EXIT_OK

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the policy gate in front of a registry",
        description=(
            "Serve the OCI distribution API on --listen and forward to --upstream, deciding every "
            "manifest pull by the policy and enforcing tag immutability on push."
        ),
    )
    parser.add_argument("--upstream", help="base URL of the registry, e.g. http://127.0.0.1:5000")
    parser.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:5050)")
    parser.add_argument("--policy", help="policy file (YAML)")
    parser.add_argument(
        "--database",
        help="SQLAlchemy URL of the audit database (default sqlite:///regward.db; "
        "postgresql://user@host/db works too)",
    )
    parser.add_argument("--config", help="YAML file with the same settings, plus `auth`")
    parser.add_argument(
        "--upstream-insecure",
        action="store_true",
        default=None,
        help="allow plain HTTP or unverified TLS to a non-loopback upstream",
    )
    parser.add_argument(
        "--tls-cert",
        help="PEM certificate chain to serve HTTPS (needed for Kubernetes admission webhooks); "
        "registry traffic is better served as plain HTTP behind a TLS terminator",
    )
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")

    parser.add_argument(
        "--feed",
        metavar="PATH_OR_URL",
        help="OSV feed for rules with a `vulnerabilities` section: a directory or zip of OSV "
        "records, a feed store directory from `regward feed sync` (re-read when a sync "
        "activates a new revision), or an http(s) base URL synced at start-up",
    )
    parser.add_argument(
        "--feed-interval",
        metavar="DURATION",
        help="how often the re-evaluation scheduler polls --feed and re-matches the images that "
        "changed records affect, such as 2s or 15m; 0 turns it off (default: 15m)",
    )
    parser.add_argument(
        "--rescan-budget",
        metavar="DURATION",
        help="how long a pull waits to match again an image whose scan result is older than "
        "its rule's maxScanAge before it is denied as stale (default: 2s)",
    )
    parser.add_argument(
        "--feed-store",
        metavar="DIR",
        help="directory an http(s) --feed is synced into (default: REGWARD_FEED_STORE, else "
        "~/.cache/regward/feed)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from regward.gate.app import create_app
    from regward.gate.settings import SettingsError, build_settings
    from regward.gate.splice import SpliceHttpProtocol

    settings = build_settings(
        config_path=args.config,
        upstream=args.upstream,
        listen=args.listen,
        policy=args.policy,
        database=args.database,
        upstream_insecure=args.upstream_insecure,
        feed=args.feed,
        feed_store=args.feed_store,
        feed_interval=args.feed_interval,
        rescan_budget=args.rescan_budget,
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SettingsError("--tls-cert and --tls-key must be given together")
    app = create_app(settings)
    logger.info(
        "listening on %s:%d, forwarding to %s",
        settings.listen_host,
        settings.listen_port,
        settings.upstream,
    )
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        loop="uvloop",
        http=SpliceHttpProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        limit_concurrency=4096,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    # uvicorn's own messages go through regward's handler (text or JSON) at ERROR, which hides
    # the warning it logs for every TLS probe that clients with --tls-verify=false send first.
    server_logger = logging.getLogger("uvicorn")
    server_logger.handlers[:] = logging.getLogger("regward").handlers
    server_logger.setLevel(logging.ERROR)
    server_logger.propagate = False
    uvicorn.Server(config).run()
    return EXIT_OK
