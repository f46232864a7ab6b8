"""Build small real images and push them to a registry over the distribution API.

The images are made here instead of pulled from the internet: a gzip layer holding the given files, an
OCI config, and an OCI image manifest. Uploads use the monolithic `POST` + `PUT ?digest=` flow.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PushedImage:
    """What `push_image` wrote: the manifest digest and bytes, and the blob digests."""

    digest: str
    manifest: bytes
    config_digest: str
    layer_digests: tuple[str, ...]


def make_layer(files: dict[str, bytes]) -> bytes:
    """Return a gzip-compressed tar holding `files` (path → content) with fixed metadata."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def upload_blob(registry_url: str, repository: str, data: bytes) -> str:
    """Upload one blob with a monolithic upload and return its digest."""
    digest = sha256(data)
    start = urllib.request.Request(
        f"{registry_url}/v2/{repository}/blobs/uploads/", method="POST", data=b""
    )
    with urllib.request.urlopen(start, timeout=30) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = registry_url + location
    separator = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{separator}digest={digest}",
        method="PUT",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=60) as response:
        assert response.status == 201, response.status
    return digest


def put_manifest(
    registry_url: str, repository: str, reference: str, manifest: bytes, media_type: str
) -> str:
    """PUT manifest bytes under a tag or digest and return the manifest digest."""
    request = urllib.request.Request(
        f"{registry_url}/v2/{repository}/manifests/{reference}",
        method="PUT",
        data=manifest,
        headers={"Content-Type": media_type},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.status
    return sha256(manifest)


def push_image(
    registry_url: str,
    repository: str,
    tag: str | None,
    files: dict[str, bytes] | None = None,
    *,
    architecture: str = "amd64",
    annotations: dict[str, str] | None = None,
) -> PushedImage:
    """Build a one-layer image from `files`, push it, and tag it when `tag` is given."""
    layer = make_layer(files if files is not None else {"hello.txt": repository.encode()})
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    config_digest = upload_blob(registry_url, repository, config)
    layer_digest = upload_blob(registry_url, repository, layer)
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
    }
    if annotations:
        body["annotations"] = annotations
    manifest = json.dumps(body, sort_keys=True).encode()
    digest = sha256(manifest)
    put_manifest(registry_url, repository, tag or digest, manifest, OCI_MANIFEST)
    return PushedImage(digest, manifest, config_digest, (layer_digest,))


def push_index(
    registry_url: str, repository: str, tag: str | None, children: list[PushedImage]
) -> tuple[str, bytes]:
    """Push an OCI image index listing `children` (already pushed) and return (digest, bytes)."""
    architectures = ["amd64", "arm64", "ppc64le", "s390x"]
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.digest,
                "size": len(child.manifest),
                "platform": {"architecture": architectures[i % 4], "os": "linux"},
            }
            for i, child in enumerate(children)
        ],
    }
    index = json.dumps(body, sort_keys=True).encode()
    digest = sha256(index)
    put_manifest(registry_url, repository, tag or digest, index, OCI_INDEX)
    return digest, index
