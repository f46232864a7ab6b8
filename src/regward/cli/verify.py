"""`regward verify`: verify cosign signatures of an image with a public key, like `cosign verify --key`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_DENIED, EXIT_ERROR, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="verify an image's cosign signatures with a public key",
        description="Resolve IMAGE, verify its cosign signatures with --key and print the "
        "verified payloads. Exit 0 when at least one verifies, 1 otherwise, 2 on error.",
    )
    parser.add_argument("image", help="image reference")
    parser.add_argument("--key", required=True, help="PEM public key file")
    parser.add_argument(
        "--signature-repository",
        help="repository holding the signatures, when not the image's own (COSIGN_REPOSITORY)",
    )
    parser.add_argument("--rekor-public-key", help="PEM public key of Rekor, to verify the SET")
    parser.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args))


async def _verify(args: argparse.Namespace) -> int:
    from regward.oci.client import RegistryClient
    from regward.oci.digest import is_digest
    from regward.oci.reference import parse_reference
    from regward.signatures.cosign import KeyAuthority
    from regward.signatures.fetch import EvidenceStatus, check_authorities

    key_pem = Path(args.key).read_bytes()
    rekor = Path(args.rekor_public_key).read_bytes() if args.rekor_public_key else None
    authority = KeyAuthority(
        name="key",
        public_key_pem=key_pem,
        signature_repository=args.signature_repository,
        rekor_public_key_pem=rekor,
    )
    reference = parse_reference(args.image)
    async with RegistryClient.for_registry(reference.registry, insecure=args.insecure) as client:
        ref = reference.digest or reference.tag or "latest"
        if is_digest(ref):
            digest = ref
        else:
            digest = (await client.get_manifest(reference.repository, ref)).digest
        results = await check_authorities(client, reference.repository, digest, [authority])
    result = results["key"]
    if result.status is EvidenceStatus.VERIFIED:
        print(
            f"verified {len(result.verified)} signature(s) of {reference.name}@{digest}",
            file=sys.stderr,
        )
        for signature in result.verified:
            print(json.dumps(json.loads(signature.payload)))
        return EXIT_OK
    for reason in result.reasons:
        print(f"error: {reason}", file=sys.stderr)
    return EXIT_DENIED if result.status is not EvidenceStatus.ERROR else EXIT_ERROR
