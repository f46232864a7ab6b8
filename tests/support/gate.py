"""Run `regward serve` as a subprocess in front of a test registry."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import free_port


@dataclass
class RunningGate:
    """A gate process listening on 127.0.0.1."""

    host: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def run_gate(
    workdir: Path,
    upstream_url: str,
    policy: Path,
    *,
    database: str | None = None,
    config: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[RunningGate]:
    """Start the gate and wait for /healthz; stop it by PID afterwards."""
    port = free_port()
    log = workdir / f"gate-{port}.log"
    command = [
        sys.executable,
        "-m",
        "regward.cli.main",
        "-v",
        "serve",
        "--upstream",
        upstream_url,
        "--listen",
        f"127.0.0.1:{port}",
        "--policy",
        str(policy),
        "--database",
        database or f"sqlite:///{workdir / f'gate-{port}.db'}",
        *extra_args,
    ]
    if config is not None:
        command += ["--config", str(config)]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gate exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gate did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield RunningGate(host=f"127.0.0.1:{port}", url=url, log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
