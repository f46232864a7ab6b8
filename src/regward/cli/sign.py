"""`regward sign` and `regward keygen`: cosign-format signing for demos and tests."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from regward.cli.main import EXIT_ERROR, EXIT_OK


def register(subparsers: Any) -> None:
    sign = subparsers.add_parser(
        "sign",
        help="sign an image in cosign's format with a private key",
        description="Resolve IMAGE to a digest and push a cosign signature (sha256-<hex>.sig tag). "
        "The key is an unencrypted PKCS#8 PEM private key, as written by `regward keygen`.",
    )
    sign.add_argument("image", help="image reference")
    sign.add_argument("--key", required=True, help="PEM private key file")
    sign.add_argument(
        "--signature-repository", help="push the signature to this repository instead"
    )
    sign.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry"
    )
    sign.set_defaults(handler=run_sign)

    keygen = subparsers.add_parser(
        "keygen",
        help="write a new signing key pair",
        description="Write PREFIX.key (private, mode 0600) and PREFIX.pub (public) PEM files.",
    )
    keygen.add_argument("--prefix", default="cosign", help="output file prefix (default: cosign)")
    keygen.add_argument(
        "--type",
        default="ecdsa-p256",
        choices=("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-4096", "ed25519"),
        help="key type (default: ecdsa-p256)",
    )
    keygen.set_defaults(handler=run_keygen)


def run_keygen(args: argparse.Namespace) -> int:
    from regward.signatures.sign import generate_keypair

    private_pem, public_pem = generate_keypair(args.type)
    private_path = Path(f"{args.prefix}.key")
    public_path = Path(f"{args.prefix}.pub")
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    print(f"wrote {private_path} and {public_path}", file=sys.stderr)
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    return asyncio.run(_sign(args))


async def _sign(args: argparse.Namespace) -> int:
    from regward.oci.client import RegistryClient
    from regward.oci.digest import is_digest
    from regward.oci.reference import parse_reference
    from regward.signatures.sign import sign_image

    private_pem = Path(args.key).read_bytes()
    reference = parse_reference(args.image)
    async with RegistryClient.for_registry(reference.registry, insecure=args.insecure) as client:
        ref = reference.digest or reference.tag or "latest"
        digest = (
            ref if is_digest(ref) else (await client.get_manifest(reference.repository, ref)).digest
        )
        signature_digest = await sign_image(
            client,
            reference.repository,
            digest,
            private_pem,
            docker_reference=reference.name,
            signature_repository=args.signature_repository,
        )
    print(f"signed {reference.name}@{digest} (signature manifest {signature_digest})")
    return EXIT_OK if signature_digest else EXIT_ERROR
