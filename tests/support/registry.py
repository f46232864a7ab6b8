"""Start Debian's docker-registry (CNCF distribution 2.8) on a free loopback port.

The registry stores blobs under a temporary directory and is stopped by PID when the test ends.
An optional htpasswd file turns on Basic auth, which the client tests use. `extra_config` adds
top-level YAML sections, such as `auth: token:` for the Docker token flow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REGISTRY_BINARY = "docker-registry"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningRegistry:
    """A docker-registry process listening on 127.0.0.1."""

    host: str
    """`127.0.0.1:PORT`, usable as the registry part of an image reference."""
    url: str
    """`http://127.0.0.1:PORT`."""
    root: Path
    """The storage directory."""
    process: subprocess.Popen[bytes]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=1.0):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # Basic auth is on: the registry is up.
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {url} within {timeout} s")


@contextlib.contextmanager
def run_registry(
    workdir: Path, htpasswd: Path | None = None, *, extra_config: str | None = None
) -> Iterator[RunningRegistry]:
    """Run docker-registry with storage in `workdir` until the block ends.

    `extra_config` is appended to the generated config.yml as top-level YAML; it must not
    repeat a section the generated config has (`version`, `log`, `storage`, `http`, and `auth`
    when `htpasswd` is given).
    """
    if shutil.which(REGISTRY_BINARY) is None:
        raise RuntimeError("docker-registry is not installed: apt-get install docker-registry")
    port = free_port()
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: regward-test\n    path: {htpasswd}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"{auth}"
        f"{extra_config or ''}"
    )
    log = (workdir / "registry.log").open("wb")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    process = subprocess.Popen(  # noqa: S603 - fixed binary, generated config
        [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield RunningRegistry(host=f"127.0.0.1:{port}", url=url, root=root, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
