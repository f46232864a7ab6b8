"""Benchmark the gate's data path against the registry itself and nginx, in one run on loopback.

Starts Debian's docker-registry, nginx as a plain reverse proxy, and `regward serve`, all on free
127.0.0.1 ports; pushes a signed small image and a signed image with one 256 MiB layer; then measures
with wrk and curl:

- manifest GET rate with 32 concurrent connections, by tag and by digest;
- p50/p99 latency with one connection (by tag);
- regward CPU time per manifest GET (from /proc, by tag and by digest);
- throughput of one 256 MiB blob GET.

Run: `.venv/bin/python bench/bench_gate.py [--seconds 5] [--blob-mib 256]`. It prints a Markdown
table with ratios to the direct registry. Every process it starts is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.images import (  # noqa: E402
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    push_image,
    put_manifest,
    upload_blob,
)

from regward.demo import free_port, run_gate, run_registry, stop, wait_http  # noqa: E402
from regward.oci.client import RegistryClient  # noqa: E402
from regward.signatures.sign import generate_keypair, sign_image  # noqa: E402

ACCEPT = f"Accept: {OCI_MANIFEST}, {OCI_INDEX}"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def run_nginx(workdir: Path, upstream: str) -> Iterator[str]:
    """Run nginx as a plain reverse proxy in front of `upstream`; yield its base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log error;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_max_body_size 0;
  proxy_temp_path {workdir}/nginx-tmp;
  client_body_temp_path {workdir}/nginx-body;
  upstream registry {{ server {upstream[7:]}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""
    )
    process = subprocess.Popen([binary, "-c", str(conf)])  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v2/", process)
        yield url
    finally:
        stop(process)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def wrk(url: str, connections: int, seconds: int, latency: bool = False) -> dict[str, float]:
    """Run wrk against `url` and return requests per second (and latency percentiles)."""
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-H", ACCEPT]
    if latency:
        command.append("--latency")
    output = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    result: dict[str, float] = {}
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["rps"] = float(found.group(1)) if found else 0.0
    found = re.search(r"(\d+) requests in", output)
    result["requests"] = float(found.group(1)) if found else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    for percentile in ("50", "99"):
        found = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", output)
        if found:
            value, unit = float(found.group(1)), found.group(2)
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
            result[f"p{percentile}_ms"] = value * scale
    return result


def blob_throughput(url: str, runs: int = 3) -> float:
    """Median MB/s of downloading `url` with curl to /dev/null."""
    speeds = []
    for _ in range(runs):
        output = subprocess.run(  # noqa: S603
            ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}", url],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
        if output[1] != "200":
            raise RuntimeError(f"blob GET {url} returned HTTP {output[1]}")
        speeds.append(float(output[0]) / 1e6)
    return statistics.median(speeds)


def push_big_image(registry_url: str, repository: str, size: int) -> tuple[str, str]:
    """Push an image with one `size`-byte layer of random data; return (manifest digest, layer digest)."""
    layer = os.urandom(size)
    layer_digest = upload_blob(registry_url, repository, layer)
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = upload_blob(registry_url, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": size}],
        }
    ).encode()
    digest = put_manifest(registry_url, repository, "big", manifest, OCI_MANIFEST)
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    return digest, layer_digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--blob-mib", type=int, default=256, help="size of the large blob in MiB")
    args = parser.parse_args()
    for tool in ("wrk", "curl", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="regward-bench-"))
    with ExitStack() as stack:
        registry = stack.enter_context(run_registry(workdir))
        private_pem, public_pem = generate_keypair()
        (workdir / "cosign.pub").write_bytes(public_pem)
        policy = workdir / "policy.yaml"
        policy.write_text(
            "defaultAction: deny\nrules:\n  - name: signed\n    repositories: ['bench/**']\n"
            "    signatures:\n      authorities:\n        - name: ci\n          key: {path: cosign.pub}\n"
        )
        small = push_image(registry, "bench/small", "v1")
        big_digest, layer_digest = push_big_image(
            registry, "bench/big", args.blob_mib * 1024 * 1024
        )

        async def sign_all() -> None:
            async with RegistryClient(registry) as client:
                for repository, digest in (
                    ("bench/small", small.digest),
                    ("bench/big", big_digest),
                ):
                    await sign_image(
                        client, repository, digest, private_pem, docker_reference=repository
                    )

        asyncio.run(sign_all())
        nginx = stack.enter_context(run_nginx(workdir, registry))
        gate_host = stack.enter_context(run_gate(workdir, registry, policy))
        gate = f"http://{gate_host}"
        gate_pid = int(
            subprocess.run(
                ["pgrep", "-f", "--", f"--listen {gate_host}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
        )
        # Warm the gate's decision for both images, which also allows the big image's blobs.
        for target in (f"{gate}/v2/bench/small/manifests/v1", f"{gate}/v2/bench/big/manifests/big"):
            subprocess.run(["curl", "-sf", "-H", ACCEPT, "-o", "/dev/null", target], check=True)  # noqa: S603

        rows: list[tuple[str, dict[str, float]]] = []
        targets = {"direct": registry, "nginx": nginx, "regward": gate}
        results: dict[str, dict[str, float]] = {name: {} for name in targets}
        for name, base in targets.items():
            by_tag = f"{base}/v2/bench/small/manifests/v1"
            by_digest = f"{base}/v2/bench/small/manifests/{small.digest}"
            cpu_before = cpu_seconds(gate_pid) if name == "regward" else 0.0
            tag_run = wrk(by_tag, 32, args.seconds)
            cpu_mid = cpu_seconds(gate_pid) if name == "regward" else 0.0
            digest_run = wrk(by_digest, 32, args.seconds)
            cpu_after = cpu_seconds(gate_pid) if name == "regward" else 0.0
            latency_run = wrk(by_tag, 1, args.seconds, latency=True)
            results[name]["tag_rps"] = tag_run["rps"]
            results[name]["digest_rps"] = digest_run["rps"]
            results[name]["errors"] = (
                tag_run["errors"] + digest_run["errors"] + latency_run["errors"]
            )
            results[name]["p50_ms"] = latency_run.get("p50_ms", 0.0)
            results[name]["p99_ms"] = latency_run.get("p99_ms", 0.0)
            if name == "regward":
                results[name]["cpu_tag_ms"] = (
                    1000 * (cpu_mid - cpu_before) / max(tag_run["requests"], 1)
                )
                results[name]["cpu_digest_ms"] = (
                    1000 * (cpu_after - cpu_mid) / max(digest_run["requests"], 1)
                )
            results[name]["blob_mbs"] = blob_throughput(f"{base}/v2/bench/big/blobs/{layer_digest}")
            rows.append((name, results[name]))

    direct = results["direct"]
    print(f"machine: {os.cpu_count()} cores, {platform_line()}")
    print(
        f"command: python bench/bench_gate.py --seconds {args.seconds} --blob-mib {args.blob_mib}\n"
    )
    print(
        "| path | manifest GET/s by tag (32 conn) | by digest (32 conn) | p50 ms (1 conn) | p99 ms | blob MB/s | non-2xx |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in rows:

        def ratio(key: str, row: dict[str, float] = row) -> str:
            return f"{row[key] / direct[key]:.2f}×" if direct[key] else "-"

        print(
            f"| {name} | {row['tag_rps']:.0f} ({ratio('tag_rps')}) | {row['digest_rps']:.0f} "
            f"({ratio('digest_rps')}) | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['blob_mbs']:.0f} ({ratio('blob_mbs')}) | {row['errors']:.0f} |"
        )
    gate_row = results["regward"]
    print(
        f"\nregward CPU per manifest GET: {gate_row['cpu_tag_ms']:.3f} ms by tag, "
        f"{gate_row['cpu_digest_ms']:.3f} ms by digest; added p50 latency "
        f"{gate_row['p50_ms'] - direct['p50_ms']:.2f} ms"
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def platform_line() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"


if __name__ == "__main__":
    sys.exit(main())
