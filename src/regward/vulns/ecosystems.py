"""OSV ecosystem names: normalisation, package-name normalisation, and which ecosystem a package queries.

OSV distro ecosystems carry a release suffix (`Debian:12`, `Alpine:v3.20`, `Ubuntu:22.04:LTS`,
`AlmaLinux:9`); language ecosystems do not. Catalogers and SBOMs spell releases differently
(`3.20.3`, `alpine-3.18.4`, `bookworm`, `Ubuntu:22.04` without `:LTS`), so both sides are normalised
here before they meet in the feed index.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

from packageurl import PackageURL

from regward.sbom.model import Distro, Package

logger = logging.getLogger(__name__)

# Canonical spelling of each ecosystem base name, keyed by its lower-case form.
_CANONICAL_BASES = {
    name.lower(): name
    for name in (
        "AlmaLinux",
        "Alpaquita",
        "Alpine",
        "Android",
        "Bitnami",
        "Chainguard",
        "CRAN",
        "crates.io",
        "Debian",
        "GHC",
        "GitHub Actions",
        "Go",
        "Hackage",
        "Hex",
        "Linux",
        "Mageia",
        "Maven",
        "MinimOS",
        "npm",
        "NuGet",
        "openEuler",
        "openSUSE",
        "OSS-Fuzz",
        "Packagist",
        "Photon OS",
        "Pub",
        "PyPI",
        "Red Hat",
        "Rocky Linux",
        "RubyGems",
        "SUSE",
        "SwiftURL",
        "Ubuntu",
        "Wolfi",
    )
}

DEBIAN_CODENAMES = {
    "buzz": "1.1",
    "rex": "1.2",
    "bo": "1.3",
    "hamm": "2.0",
    "slink": "2.1",
    "potato": "2.2",
    "woody": "3.0",
    "sarge": "3.1",
    "etch": "4",
    "lenny": "5",
    "squeeze": "6",
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
    "sid": "sid",
}
"""Debian release codenames and their numbers, as `distro=` qualifiers and os-release spell them."""

UBUNTU_CODENAMES = {
    "trusty": "14.04",
    "xenial": "16.04",
    "bionic": "18.04",
    "focal": "20.04",
    "groovy": "20.10",
    "hirsute": "21.04",
    "impish": "21.10",
    "jammy": "22.04",
    "kinetic": "22.10",
    "lunar": "23.04",
    "mantic": "23.10",
    "noble": "24.04",
    "oracular": "24.10",
    "plucky": "25.04",
    "questing": "25.10",
    "resolute": "26.04",
}
"""Ubuntu release codenames and their versions."""

_PURL_TYPE_ECOSYSTEMS = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "maven": "Maven",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
    "pub": "Pub",
    "hackage": "Hackage",
    "hex": "Hex",
    "swift": "SwiftURL",
    "cran": "CRAN",
    "bitnami": "Bitnami",
}

_GO_TOOLCHAIN = re.compile(
    r"(?:go)?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:(?P<pre>beta|rc)(?P<pre_number>\d+))?"
)


@dataclass(frozen=True)
class PackageQuery:
    """One lookup of the matcher: a package name and version in one or more ecosystems.

    When several ecosystems are listed, each record is evaluated with its affected entries for the
    first listed ecosystem that the record names. A Debian `~bpoN` backport is judged this way by
    release N+1 before release N.
    """

    ecosystems: tuple[str, ...]
    """Normalised OSV ecosystems, in order of preference."""
    name: str
    """The package name as the feed index stores it (see `normalize_name`)."""
    version: str
    """The version to evaluate, already converted for the ecosystem (Go toolchains lose `go`)."""


def _split_release(ecosystem: str) -> tuple[str, str]:
    base, _, release = ecosystem.strip().partition(":")
    return _CANONICAL_BASES.get(base.strip().lower(), base.strip()), release.strip()


def _ubuntu_release(release: str) -> str:
    """Return `YY.MM[:LTS]` for an Ubuntu release; even-year April releases are LTS."""
    release = UBUNTU_CODENAMES.get(release.lower(), release)
    match = re.fullmatch(r"(\d{2})\.(\d{2})(?:\.\d+)?", release)
    if match is None:
        return release
    year, month = match.groups()
    version = f"{year}.{month}"
    if month == "04" and int(year) % 2 == 0:
        return version + ":LTS"
    return version


@functools.lru_cache(maxsize=4096)
def normalize_ecosystem(ecosystem: str) -> str:
    """Return the canonical spelling of an OSV ecosystem.

    `debian:bookworm` → `Debian:12`, `Alpine:3.20.3` → `Alpine:v3.20`, `Ubuntu:22.04` →
    `Ubuntu:22.04:LTS`, `Ubuntu:Pro:18.04` → `Ubuntu:Pro:18.04:LTS`, `AlmaLinux:9.4` → `AlmaLinux:9`,
    `pypi` → `PyPI`. Unknown ecosystems keep their spelling, trimmed.
    """
    base, release = _split_release(ecosystem)
    if not release:
        return base
    if base == "Debian":
        release = DEBIAN_CODENAMES.get(release.lower(), release)
        match = re.fullmatch(r"(\d+)(?:\.\d+)*", release)
        return f"Debian:{match.group(1) if match and int(match.group(1)) >= 4 else release}"
    if base == "Alpine":
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)*", release)
        return f"Alpine:v{match.group(1)}.{match.group(2)}" if match else f"Alpine:{release}"
    if base == "Ubuntu":
        parts = release.split(":")
        if parts[0].lower() == "pro" and len(parts) >= 2:
            return "Ubuntu:Pro:" + _ubuntu_release(parts[1])
        if len(parts) <= 2 and (len(parts) == 1 or parts[1].upper() == "LTS"):
            return "Ubuntu:" + _ubuntu_release(parts[0])
        return f"Ubuntu:{release}"
    if base in ("AlmaLinux", "Rocky Linux"):
        match = re.fullmatch(r"(\d+)(?:\.\d+)*", release)
        return f"{base}:{match.group(1) if match else release}"
    return f"{base}:{release}"


@functools.lru_cache(maxsize=4096)
def index_ecosystem(ecosystem: str) -> str:
    """Return the ecosystem under which the feed index files records of `ecosystem`.

    Red Hat ecosystems name a CPE stream (`Red Hat:enterprise_linux:9::appstream`); an image only
    records its major release, so every `enterprise_linux:N` stream is filed under
    `Red Hat:enterprise_linux:N`. Other ecosystems are filed under their normalised name.
    """
    normalized = normalize_ecosystem(ecosystem)
    base, release = _split_release(normalized)
    if base == "Red Hat":
        match = re.match(r"enterprise_linux:(\d+)", release)
        if match:
            return f"Red Hat:enterprise_linux:{match.group(1)}"
    return normalized


@functools.lru_cache(maxsize=4096)
def ecosystem_base(ecosystem: str) -> str:
    """Return the ecosystem without its release suffix: `Debian:12` → `Debian`."""
    return _split_release(ecosystem)[0]


def normalize_name(ecosystem: str, name: str) -> str:
    """Return a package name as the index stores it.

    PyPI names are normalised as PEP 503 specifies; NuGet and Packagist names are case-insensitive and
    lower-cased. Other ecosystems compare names exactly.
    """
    base = ecosystem_base(ecosystem)
    if base == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    if base in ("NuGet", "Packagist"):
        return name.lower()
    return name


def go_toolchain_version(version: str) -> str | None:
    """Return the SemVer form of a Go toolchain version, or None for a development build.

    `go1.22.1 X:boringcrypto` → `1.22.1`; `go1.20` → `1.20.0` (Go named the first release of 1.20
    `go1.20`); `go1.21rc2` → `1.21.0-rc.2`.
    """
    text = version.strip().split()[0] if version.strip() else ""
    text = text.split("-X:")[0].removeprefix("v")
    match = _GO_TOOLCHAIN.fullmatch(text)
    if match is None:
        return None
    core = f"{match['major']}.{match['minor']}.{match['patch'] or 0}"
    if match["pre"]:
        return f"{core}-{match['pre']}.{match['pre_number']}"
    return core


def _purl(package: Package) -> PackageURL | None:
    if not package.purl:
        return None
    try:
        return PackageURL.from_string(package.purl)
    except ValueError:
        logger.debug("ignoring invalid purl %s of %s", package.purl, package.name)
        return None


def _qualifiers(purl: PackageURL) -> dict[str, str]:
    # packageurl-python returns qualifiers as a dict when parsing a string.
    qualifiers: object = purl.qualifiers
    return {str(k): str(v) for k, v in qualifiers.items()} if isinstance(qualifiers, dict) else {}


def _distro_from_purl(purl: PackageURL | None) -> tuple[str, str] | None:
    """Return `(id, release)` from a purl's `distro=` qualifier and namespace."""
    if purl is None:
        return None
    distro = str(_qualifiers(purl).get("distro", ""))
    namespace = (purl.namespace or "").lower()
    if distro:
        match = re.fullmatch(r"([a-z]+)-(.+)", distro)
        if match:
            return match.group(1), match.group(2)
        if namespace:
            return namespace, distro
        return None
    if namespace in ("wolfi", "chainguard"):
        return namespace, ""
    return None


def distro_ecosystems(distro_id: str, release: str) -> tuple[str, ...]:
    """Return the OSV ecosystem of an os-release `ID` and `VERSION_ID` (or purl `distro=`), if any."""
    distro_id = distro_id.lower()
    if distro_id in ("debian", "raspbian"):
        return (normalize_ecosystem(f"Debian:{release}"),) if release else ()
    if distro_id == "ubuntu":
        return (normalize_ecosystem(f"Ubuntu:{release}"),) if release else ()
    if distro_id == "alpine":
        return (normalize_ecosystem(f"Alpine:{release}"),) if release else ()
    if distro_id == "wolfi":
        return ("Wolfi",)
    if distro_id == "chainguard":
        return ("Chainguard",)
    major = release.split(".")[0]
    if distro_id in ("almalinux", "alma"):
        return (f"AlmaLinux:{major}",) if major else ()
    if distro_id in ("rocky", "rockylinux"):
        return (f"Rocky Linux:{major}",) if major else ()
    if distro_id in ("rhel", "redhat"):
        return (f"Red Hat:enterprise_linux:{major}",) if major else ()
    if distro_id == "opensuse-leap":
        return (f"openSUSE:Leap {release}",) if release else ()
    if distro_id == "opensuse-tumbleweed":
        return ("openSUSE:Tumbleweed",)
    if distro_id in ("sles", "sled"):
        parts = release.split(".")
        if len(parts) == 2 and parts[1] != "0":
            return (f"SUSE:Linux Enterprise Server {parts[0]} SP{parts[1]}",)
        return (f"SUSE:Linux Enterprise Server {parts[0]}",) if parts[0] else ()
    return ()


def _package_distro(package: Package, purl: PackageURL | None) -> tuple[str, str] | None:
    if package.distro is not None and package.distro.id:
        return package.distro.id, package.distro.version_id
    return _distro_from_purl(purl)


def _upstream_qualifier(purl: PackageURL | None) -> tuple[str | None, str | None]:
    """Return the source name and version from a purl's `upstream=<name>[@<version>]` qualifier."""
    if purl is None:
        return None, None
    upstream = str(_qualifiers(purl).get("upstream", ""))
    if not upstream:
        return None, None
    name, _, version = upstream.partition("@")
    return name or None, version or None


def _language_name(package: Package, purl: PackageURL | None) -> str:
    """Return the name that language ecosystems index: Maven `group:artifact`, Go and npm with scope."""
    if purl is None:
        return package.name
    if purl.type == "maven" and purl.namespace:
        return f"{purl.namespace}:{purl.name}"
    if purl.type in ("golang", "composer", "npm") and purl.namespace:
        return f"{purl.namespace}/{purl.name}"
    return package.name


def _debian_backport_release(version: str) -> str | None:
    """Return the Debian release whose sources a `~bpoN` backport was built from (N + 1)."""
    match = re.search(r"~bpo(\d+)", version)
    if match is None:
        return None
    return str(int(match.group(1)) + 1)


def queries_for(package: Package) -> tuple[PackageQuery, ...]:
    """Return the lookups for a package in order of preference; the matcher uses the first that finds records.

    * deb: the `Source:` name and source version, else the purl `upstream=` qualifier, else the
      binary name and version. A `~bpoN` backport also consults release N+1, which it was built from,
      and an Ubuntu `+esm` build also consults the Ubuntu Pro data of its release.
    * apk on Alpine: the origin (`o:`), else the purl `upstream=`, else the name. On Wolfi and
      Chainguard, whose advisories list each affected subpackage, the binary name.
    * rpm: the binary name, since AlmaLinux and Red Hat data list binary RPMs; then the source RPM.
    * Go: `stdlib` versions lose the `go` prefix and `X:` experiments; `go` is renamed `stdlib`.
    * Other language types: the ecosystem of the purl type.

    A package without a version, or whose distro has no OSV ecosystem, gets no query.
    """
    if not package.version:
        return ()
    purl = _purl(package)
    if package.type in ("deb", "apk", "rpm"):
        return _distro_queries(package, purl)
    ecosystem = _PURL_TYPE_ECOSYSTEMS.get(package.type)
    if ecosystem is None:
        return ()
    name = _language_name(package, purl)
    version = package.version
    if ecosystem == "Go":
        if name in ("go", "stdlib", "toolchain"):
            converted = go_toolchain_version(version)
            if converted is None:
                return ()
            return (
                PackageQuery(("Go",), "toolchain" if name == "toolchain" else "stdlib", converted),
            )
        if version == "(devel)":
            return ()
    return (PackageQuery((ecosystem,), normalize_name(ecosystem, name), version),)


def _distro_queries(package: Package, purl: PackageURL | None) -> tuple[PackageQuery, ...]:
    distro = _package_distro(package, purl)
    if distro is None:
        return ()
    ecosystems = distro_ecosystems(*distro)
    if not ecosystems:
        return ()

    upstream_name, upstream_version = _upstream_qualifier(purl)
    source_name = package.source_name or upstream_name
    source_version = package.source_version or upstream_version
    base = ecosystem_base(ecosystems[0])

    if package.type == "deb":
        version = source_version or package.version
        if base == "Debian":
            backport_release = _debian_backport_release(version)
            if backport_release is not None:
                ecosystems = (f"Debian:{backport_release}", *ecosystems)
        if base == "Ubuntu" and "+esm" in version:
            # Expanded Security Maintenance builds are covered by the Ubuntu Pro data.
            ecosystems = (ecosystems[0].replace("Ubuntu:", "Ubuntu:Pro:", 1), *ecosystems)
        return (PackageQuery(ecosystems, source_name or package.name, version),)

    if package.type == "apk":
        if base in ("Wolfi", "Chainguard"):
            # Their advisories list every affected subpackage by name; looking up the origin would
            # flag subpackages that an advisory leaves out as unaffected.
            return (PackageQuery(ecosystems, package.name, package.version),)
        return (
            PackageQuery(
                ecosystems, source_name or package.name, source_version or package.version
            ),
        )

    # rpm: AlmaLinux and Red Hat data name binary RPMs, so the binary name comes first.
    queries = [PackageQuery(ecosystems, package.name, package.version)]
    if source_name and source_name != package.name:
        queries.append(PackageQuery(ecosystems, source_name, source_version or package.version))
    return tuple(queries)


def distro_of(package: Package) -> Distro | None:
    """Return the package's distro, from the package or else from its purl's `distro=` qualifier."""
    if package.distro is not None:
        return package.distro
    found = _distro_from_purl(_purl(package))
    if found is None:
        return None
    return Distro(id=found[0], version_id=found[1])
