"""The end-to-end demo behind `regward demo`: a real registry, the gate, a signed and an unsigned image.

Everything runs on loopback ports chosen at start-up, in a temporary folder, and every process the
demo starts is stopped by PID when it ends.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from regward.errors import RegwardError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class DemoError(RegwardError):
    """A step of the demo failed."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until `url` responds (any HTTP status), or fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{process.args!r} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):  # noqa: S310 - loopback URL built here
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise DemoError(f"{url} did not respond within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started by the demo, by PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def run_registry(workdir: Path) -> Iterator[str]:
    """Run Debian's docker-registry on a free loopback port; yield its base URL."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise DemoError("docker-registry is not installed: apt-get install docker-registry")
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'registry-data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed binary and generated config
        [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v2/", process)
        yield url
    finally:
        stop(process)
        log.close()


@contextmanager
def run_gate(workdir: Path, upstream: str, policy: Path) -> Iterator[str]:
    """Run `regward serve` in front of `upstream`; yield the gate's HOST:PORT."""
    port = free_port()
    log = (workdir / "gate.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "regward.cli.main",
        "serve",
        "--upstream",
        upstream,
        "--listen",
        f"127.0.0.1:{port}",
        "--policy",
        str(policy),
        "--database",
        f"sqlite:///{workdir / 'regward.db'}",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()


def write_oci_layout(directory: Path, tag: str, files: dict[str, bytes]) -> str:
    """Write a one-layer image as an OCI layout directory; return its manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def store(data: bytes) -> str:
        hex_digest = hashlib.sha256(data).hexdigest()
        (blobs / hex_digest).write_bytes(data)
        return f"sha256:{hex_digest}"

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": store(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": store(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = store(manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return digest


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo with a bounded time and capture its output."""
    binary = shutil.which("skopeo") or "skopeo"
    return subprocess.run(  # noqa: S603 - fixed binary, arguments built by the demo
        [binary, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(keep: bool = False) -> int:
    """Run the demo and return 0 when every step behaved as expected."""
    from regward.oci.client import RegistryClient
    from regward.signatures.sign import generate_keypair, sign_image

    if shutil.which("skopeo") is None:
        raise DemoError("skopeo is not installed: apt-get install skopeo")
    workdir = Path(tempfile.mkdtemp(prefix="regward-demo-"))
    failures = 0
    try:
        private_pem, public_pem = generate_keypair()
        (workdir / "cosign.pub").write_bytes(public_pem)
        policy = workdir / "policy.yaml"
        policy.write_text(
            "defaultAction: deny\n"
            "rules:\n"
            "  - name: ci-signed\n"
            '    repositories: ["demo/**"]\n'
            "    signatures:\n"
            "      authorities:\n"
            "        - name: ci\n"
            "          key: {path: cosign.pub}\n"
            "    immutableTags:\n"
            '      patterns: ["v*"]\n'
        )
        with run_registry(workdir) as upstream, run_gate(workdir, upstream, policy) as gate:
            _say(f"registry : {upstream} (Debian docker-registry)")
            _say(f"gate     : http://{gate}  (regward serve, policy {policy})")
            _say("")
            images = {}
            for name in ("signed", "unsigned"):
                layout = workdir / f"layout-{name}"
                images[name] = write_oci_layout(
                    layout, "v1", {"hello": f"hello from the {name} image\n".encode()}
                )
                pushed = skopeo(
                    "copy",
                    "--quiet",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:v1",
                    f"docker://{gate}/demo/{name}:v1",
                )
                if pushed.returncode != 0:
                    raise DemoError(f"push of demo/{name}:v1 failed: {pushed.stderr.strip()}")
                _say(f"pushed   : demo/{name}:v1 through the gate ({images[name][:19]}…)")

            async def sign() -> str:
                async with RegistryClient(f"http://{gate}") as client:
                    return await sign_image(
                        client,
                        "demo/signed",
                        images["signed"],
                        private_pem,
                        docker_reference=f"{gate}/demo/signed",
                    )

            asyncio.run(sign())
            _say("signed   : demo/signed:v1 with the demo key (cosign format, sha256-….sig tag)")
            _say("")

            for name, expect_allowed in (("signed", True), ("unsigned", False)):
                target = workdir / f"pulled-{name}"
                pulled = skopeo(
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{gate}/demo/{name}:v1",
                    f"oci:{target}:v1",
                )
                allowed = pulled.returncode == 0
                verdict = "ALLOWED" if allowed else "DENIED"
                detail = "" if allowed else "\n           " + _last_line(pulled.stderr)
                _say(f"pull     : demo/{name}:v1  -> {verdict}{detail}")
                if allowed != expect_allowed:
                    failures += 1

            other = workdir / "layout-other"
            write_oci_layout(other, "v1", {"hello": b"a different image under the same tag\n"})
            moved = skopeo(
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{other}:v1",
                f"docker://{gate}/demo/signed:v1",
            )
            verdict = "ALLOWED" if moved.returncode == 0 else "DENIED"
            detail = "" if moved.returncode == 0 else "\n           " + _last_line(moved.stderr)
            _say(f"push     : another image to demo/signed:v1 (immutable tag) -> {verdict}{detail}")
            if moved.returncode == 0:
                failures += 1
        _say("")
        _say(
            "result   : "
            + ("as expected" if failures == 0 else f"{failures} unexpected outcome(s)")
        )
        if keep:
            _say(f"files    : {workdir}")
        return 0 if failures == 0 else 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _last_line(text: str) -> str:
    """Return the registry's error message from skopeo's last log line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    line = lines[-1]
    start = line.find("denied: ")
    if start >= 0:
        return line[start:].rstrip('"')
    return line


if __name__ == "__main__":
    sys.exit(run_demo(keep=bool(os.environ.get("REGWARD_DEMO_KEEP"))))
