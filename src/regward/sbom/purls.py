"""Package URL construction shared by the catalogers, through packageurl-python.

Distro packages carry `arch=`, `upstream=` and `distro=` qualifiers with the values syft writes
(`upstream=<source>[@<source version>]`, `distro=<ID>-<VERSION_ID>`). packageurl-python sorts the
qualifiers by key, as the purl specification requires, so the order differs from syft's strings.
"""

from __future__ import annotations

from packageurl import PackageURL

from regward.sbom.model import Distro


def make_purl(
    purl_type: str,
    namespace: str | None,
    name: str,
    version: str | None,
    qualifiers: dict[str, str] | None = None,
    subpath: str | None = None,
) -> str:
    """Return the canonical purl string; empty qualifier values are left out."""
    kept = {key: value for key, value in (qualifiers or {}).items() if value}
    return str(
        PackageURL(
            type=purl_type,
            namespace=namespace or None,
            name=name,
            version=version or None,
            qualifiers=kept or None,
            subpath=subpath or None,
        ).to_string()
    )


def distro_qualifier(distro: Distro | None) -> str:
    """Return the `distro=` value for `distro`: `debian-12`, `alpine-3.20.3`, or `` if unknown."""
    if distro is None or not distro.id:
        return ""
    if distro.version_id:
        return f"{distro.id}-{distro.version_id}"
    return distro.id


def golang_purl(module_path: str, version: str | None) -> str:
    """Return the purl of a Go module: the last path element is the name, the rest the namespace."""
    namespace, _, name = module_path.rpartition("/")
    return make_purl("golang", namespace, name, version)
