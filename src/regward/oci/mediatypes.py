"""Media types of OCI and Docker manifests, indexes, configs and layers.

regward reads OCI image manifests and indexes and Docker schema 2 manifests and manifest
lists. Docker schema 1 (signed or not) is rejected: it has no content-addressed config and was
removed from Docker and distribution.
"""

from __future__ import annotations

from regward.oci._text import shown
from regward.oci.errors import ManifestError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
"""The empty descriptor type: config of artifacts that carry no config, blob `{}`."""
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
"""Docker schema 1 manifest types, which regward rejects."""

OCI_LAYER_MEDIA_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    }
)
"""OCI filesystem layer types, including the deprecated non-distributable ones."""

MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST_V2})
"""Single-image manifest types: a config and layers."""
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Index types: a list of manifests, usually one per platform."""
ALL_MANIFEST_MEDIA_TYPES = MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES
"""Every manifest type regward accepts."""

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2))
"""`Accept` header value for manifest requests: the four accepted types and nothing else."""


def base_media_type(value: str) -> str:
    """Return a media type without parameters and surrounding space, in lower case.

    For example `application/vnd.oci.image.manifest.v1+json; charset=utf-8` gives
    `application/vnd.oci.image.manifest.v1+json`. Media types compare case-insensitively
    (RFC 6838, section 4.2).
    """
    return value.split(";", 1)[0].strip().lower()


def check_manifest_media_type(media_type: str, *, subject: str = "manifest") -> str:
    """Return the base form of `media_type` if regward accepts it as a manifest type.

    Raises:
        ManifestError: the type is Docker schema 1 or not a manifest or index type.
    """
    base = base_media_type(media_type)
    if base in SCHEMA1_MEDIA_TYPES:
        raise ManifestError(
            f"{subject} has media type {base}: Docker schema 1 manifests are not supported, "
            "push the image again with a current client to get a schema 2 or OCI manifest"
        )
    if base not in ALL_MANIFEST_MEDIA_TYPES:
        raise ManifestError(
            f"{subject} has unsupported media type {shown(media_type)}: expected one of "
            + ", ".join(sorted(ALL_MANIFEST_MEDIA_TYPES))
        )
    return base
