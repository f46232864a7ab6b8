"""Build multi-layer test images: tar layers with files, links, directories and whiteouts,
written as an OCI image layout, a docker-archive tar, or pushed to a registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import OCI_CONFIG, OCI_MANIFEST, put_manifest, upload_blob

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One tar entry: a file (content), a symlink or hard link (link), or a directory."""

    name: str
    content: bytes = b""
    kind: str = "file"
    link: str = ""
    mode: int = 0o644
    size: int | None = None
    """Declared size, when a test needs a header that disagrees with the content."""


def symlink(name: str, target: str) -> Entry:
    return Entry(name, kind="symlink", link=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, kind="hardlink", link=target)


def directory(name: str) -> Entry:
    return Entry(name, kind="dir", mode=0o755)


def whiteout(path: str) -> Entry:
    parent, _, name = path.rpartition("/")
    return Entry(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory_path: str) -> Entry:
    return Entry(f"{directory_path}/.wh..wh..opq" if directory_path else ".wh..wh..opq")


def make_tar(entries: list[Entry] | dict[str, bytes]) -> bytes:
    """Return an uncompressed tar of `entries` (a dict means regular files), in the given order."""
    if isinstance(entries, dict):
        entries = [Entry(name, content) for name, content in entries.items()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 0
            info.mode = entry.mode
            if entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return raw.getvalue()


def gzip_layer(tar: bytes) -> bytes:
    return gzip.compress(tar, compresslevel=1, mtime=0)


def _config(layers_uncompressed: list[bytes]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in layers_uncompressed]},
        },
        sort_keys=True,
    ).encode()


def _uncompressed(blob: bytes) -> bytes:
    if blob.startswith(b"\x1f\x8b"):
        return gzip.decompress(blob)
    if blob.startswith(b"\x28\xb5\x2f\xfd"):
        from backports import zstd

        return bytes(zstd.decompress(blob))
    return blob


def _media_type(blob: bytes) -> str:
    if blob.startswith(b"\x1f\x8b"):
        return OCI_LAYER_GZIP
    if blob.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER_ZSTD
    return OCI_LAYER_TAR


def image_manifest(layers: list[bytes]) -> tuple[bytes, bytes]:
    """Return (manifest, config) bytes for an image made of the layer blobs `layers`."""
    config = _config([_uncompressed(blob) for blob in layers])
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": _media_type(blob), "digest": sha256(blob), "size": len(blob)}
                for blob in layers
            ],
        },
        sort_keys=True,
    ).encode()
    return manifest, config


def write_oci_layout(root: Path, layers: list[bytes], tag: str | None = "latest") -> str:
    """Write an OCI image layout holding one image; return the manifest digest."""
    manifest, config = image_manifest(layers)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in [manifest, config, *layers]:
        (blobs / sha256(blob).split(":")[1]).write_bytes(blob)
    descriptor: dict[str, object] = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(manifest),
        "size": len(manifest),
    }
    if tag is not None:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return sha256(manifest)


def write_docker_archive(path: Path, layers: list[bytes], *, legacy: bool = True) -> None:
    """Write a `docker save` tar: legacy `<id>/layer.tar` layers, or `blobs/sha256/<hex>`."""
    uncompressed = [_uncompressed(blob) for blob in layers]
    config = _config(uncompressed)
    config_name = sha256(config).split(":")[1] + ".json"
    files: dict[str, bytes] = {config_name: config}
    names = []
    for number, blob in enumerate(uncompressed if legacy else layers):
        name = (
            f"layer{number}/layer.tar" if legacy else "blobs/sha256/" + sha256(blob).split(":")[1]
        )
        files[name] = blob
        names.append(name)
    files["manifest.json"] = json.dumps(
        [{"Config": config_name, "RepoTags": ["test:latest"], "Layers": names}]
    ).encode()
    path.write_bytes(make_tar(files))


def push_layers(registry_url: str, repository: str, tag: str, layers: list[bytes]) -> str:
    """Push an image made of the layer blobs `layers`; return the manifest digest."""
    manifest, config = image_manifest(layers)
    upload_blob(registry_url, repository, config)
    for blob in layers:
        upload_blob(registry_url, repository, blob)
    return put_manifest(registry_url, repository, tag, manifest, OCI_MANIFEST)


# Images with real content, for the syft parity test and the cataloging benchmark.

DEBIAN_TARGET_PACKAGES = 1030
"""Package count of the Debian benchmark image: this machine's dpkg database, topped up with
stanzas of other Debian 12 packages from the apt lists."""
PYPI_REQUIREMENTS = ("requests==2.19.0", "flask==3.0.3", "pyyaml==6.0.2", "cryptography==43.0.3")
NPM_PACKAGES = ("express@4.21.2", "lodash@4.17.21", "@babel/core@7.26.0")
GO_BINARIES = ("/usr/bin/docker-registry", "/usr/bin/skopeo", "/usr/bin/podman")
JAR_GLOBS = (
    "com/google/guava/guava/33.0.0-jre/*.jar",
    "org/apache/commons/commons-lang3/*/*.jar",
    "org/apache/commons/commons-compress/*/*.jar",
    "net/java/dev/jna/jna/5.13.0/*.jar",
    "net/bytebuddy/byte-buddy/1.14.12/*.jar",
)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def debian_layer(total_packages: int = DEBIAN_TARGET_PACKAGES) -> bytes:
    """Return an uncompressed layer with this machine's dpkg database and documentation copyright
    files, its status topped up to `total_packages` with stanzas from `apt-cache dumpavail`."""
    import glob
    import subprocess

    status = _read("/var/lib/dpkg/status").decode()
    installed = {
        line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Package:")
    }
    missing = max(0, total_packages - len(installed))
    extra: list[str] = []
    if missing:
        dump = subprocess.run(
            ["apt-cache", "dumpavail"], check=True, capture_output=True, text=True
        ).stdout
        stanzas = [s for s in dump.split("\n\n") if s.startswith("Package:")]
        seen = set(installed)
        step = max(1, len(stanzas) // (missing * 2))
        for stanza in stanzas[::step]:
            name = stanza.split("\n", 1)[0].split(":", 1)[1].strip()
            if name in seen:
                continue
            seen.add(name)
            head, _, rest = stanza.partition("\n")
            extra.append(f"{head}\nStatus: install ok installed\n{rest.strip()}\n")
            if len(extra) == missing:
                break
    full_status = status.rstrip("\n") + "\n\n" + "\n".join(extra)
    entries = [
        Entry("etc/os-release", _read("/usr/lib/os-release")),
        Entry("usr/lib/os-release", _read("/usr/lib/os-release")),
        Entry("var/lib/dpkg/status", full_status.encode()),
    ]
    for path in sorted(glob.glob("/var/lib/dpkg/info/*")):
        entries.append(Entry(path.lstrip("/"), _read(path)))
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            entries.append(Entry(path.lstrip("/"), _read(path)))
        except OSError:
            continue
    return make_tar(entries)


def _tree_entries(root: Path, prefix: str) -> list[Entry]:
    entries = []
    for path in sorted(root.rglob("*")):
        relative = f"{prefix}/{path.relative_to(root).as_posix()}"
        if path.is_symlink():
            entries.append(symlink(relative, str(path.readlink())))
        elif path.is_file():
            entries.append(Entry(relative, path.read_bytes(), mode=path.stat().st_mode & 0o777))
    return entries


def language_layers(workdir: Path) -> list[bytes]:
    """Return layers with wheels and npm packages installed from the package registries (cached in
    `workdir`), Go executables of this machine, and jars from the local Maven repository."""
    import glob
    import subprocess
    import sys

    python_dir = workdir / "site-packages"
    if not (python_dir / ".complete").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--no-warn-conflicts",
                "--disable-pip-version-check",
                "--target",
                str(python_dir),
                *PYPI_REQUIREMENTS,
            ],
            check=True,
        )
        (python_dir / ".complete").write_text("")
    node_dir = workdir / "node"
    if not (node_dir / ".complete").exists():
        node_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(node_dir),
                *NPM_PACKAGES,
            ],
            check=True,
        )
        (node_dir / ".complete").write_text("")
    python_entries = _tree_entries(python_dir, "usr/lib/python3/dist-packages")
    node_entries = _tree_entries(node_dir / "node_modules", "app/node_modules")
    go_entries = [
        Entry(f"usr/local/bin/{Path(b).name}", _read(b), mode=0o755)
        for b in GO_BINARIES
        if Path(b).exists()
    ]
    jar_entries = []
    for pattern in JAR_GLOBS:
        for jar in sorted(glob.glob(str(Path.home() / ".m2/repository" / pattern))):
            if not jar.endswith(("-sources.jar", "-javadoc.jar", "-tests.jar")):
                jar_entries.append(Entry(f"opt/app/lib/{Path(jar).name}", _read(jar)))
    return [
        make_tar(python_entries),
        make_tar(node_entries),
        make_tar(go_entries),
        make_tar(jar_entries),
    ]
