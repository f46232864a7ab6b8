"""Java archives (jar, war, ear, …): Maven coordinates from `META-INF/maven/**/pom.properties`, the
`META-INF/MANIFEST.MF` main attributes and the file name, and the same for archives nested inside
archives, down to `Limits.max_archive_depth`.

An archive is read with the standard library's `zipfile` when the layer is read, and only the
coordinates found are kept in the index (as JSON), so large archives do not stay in memory.

The archive's own package comes from the `pom.properties` whose artifactId matches the file name,
otherwise from the manifest and the file name; every other `pom.properties` (shaded dependencies)
becomes a package of its own.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from dataclasses import asdict, dataclass

from regward.sbom.interface import (
    DEFAULT_LIMITS,
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    FileSystem,
    Limits,
)
from regward.sbom.model import Package
from regward.sbom.purls import make_purl

logger = logging.getLogger(__name__)

ARCHIVE_EXTENSIONS = ("jar", "war", "ear", "par", "sar", "nar", "jpi", "hpi", "kar", "lpkg")
_ARCHIVE_SUFFIXES = tuple("." + extension for extension in ARCHIVE_EXTENSIONS)
_MANIFEST = "META-INF/MANIFEST.MF"
_POM_PROPERTIES = re.compile(r"META-INF/maven/[^/]+/[^/]+/pom\.properties")
# `name-1.2.3.jar`: the version starts at the first `-` followed by a digit.
_FILENAME = re.compile(r"^(?P<name>.+?)(?:-(?P<version>\d[^-]*(?:-.*)?))?$")
_MANIFEST_NAME_FIELDS = (
    "Name",
    "Bundle-Name",
    "Short-Name",
    "Extension-Name",
    "Implementation-Title",
)
_MANIFEST_VERSION_FIELDS = (
    "Implementation-Version",
    "Specification-Version",
    "Plugin-Version",
    "Bundle-Version",
)
_MANIFEST_GROUP_FIELDS = ("Implementation-Vendor-Id", "Bundle-SymbolicName", "Extension-Name")


@dataclass(frozen=True)
class _Found:
    """Coordinates of one package found in an archive."""

    artifact: str
    version: str
    group: str
    location: str


def parse_manifest(text: str) -> list[dict[str, str]]:
    """Parse a JAR manifest into its sections; the first is the main section (JAR File
    Specification: 72-byte lines continued by a leading space)."""
    sections: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key = ""
    for line in text.splitlines():
        if not line:
            if current:
                sections.append(current)
                current = {}
            last_key = ""
            continue
        if line.startswith(" "):
            if last_key:
                current[last_key] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            continue
        last_key = key.strip()
        current.setdefault(last_key, value.strip())
    if current:
        sections.append(current)
    return sections


def parse_properties(text: str) -> dict[str, str]:
    """Parse the `key=value` lines of a `pom.properties` file (java.util.Properties, without
    escapes or continuations, which Maven does not write)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def split_filename(path: str) -> tuple[str, str]:
    """Return the (name, version) encoded in an archive file name like `guava-33.0.0-jre.jar`."""
    base = path.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    match = _FILENAME.match(stem)
    if match is None:
        return stem, ""
    return match.group("name"), match.group("version") or ""


def _manifest_field(sections: list[dict[str, str]], field_name: str) -> str:
    for section in sections:
        value = section.get(field_name, "")
        if value:
            return value
    return ""


def _artifact_matches_filename(artifact: str, filename: str, artifacts: set[str]) -> bool:
    if not artifact or not filename:
        return False
    if filename in artifacts:
        return artifact == filename
    return artifact.startswith(filename) or filename.endswith(artifact)


def _group_from_manifest(main: dict[str, str]) -> str:
    for field_name in _MANIFEST_GROUP_FIELDS:
        value = main.get(field_name, "").split(";", 1)[0].strip()
        if "." in value:
            return value
    return ""


class _ArchiveReader:
    """Reads one archive and the archives nested in it, within `Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.found: list[_Found] = []
        self.skipped: list[str] = []

    def read(self, data: bytes, location: str, depth: int) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            self.skipped.append(f"{location}: not a readable zip archive: {exc}")
            return
        with archive:
            infos = archive.infolist()
            if len(infos) > self.limits.max_archive_entries:
                self.skipped.append(
                    f"{location}: {len(infos)} entries, over the limit of"
                    f" {self.limits.max_archive_entries}"
                )
                return
            self._read_archive(archive, infos, location, depth)

    def _member(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, location: str
    ) -> bytes | None:
        cap = self.limits.max_archive_member_bytes
        if info.file_size > cap:
            self.skipped.append(f"{location}!{info.filename}: larger than {cap} bytes")
            return None
        try:
            with archive.open(info) as handle:
                # Read one byte past the cap: the declared size of a zip entry can lie.
                data = handle.read(cap + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            self.skipped.append(f"{location}!{info.filename}: unreadable: {exc}")
            return None
        if len(data) > cap:
            self.skipped.append(f"{location}!{info.filename}: larger than {cap} bytes")
            return None
        return data

    def _read_archive(
        self, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], location: str, depth: int
    ) -> None:
        manifest: list[dict[str, str]] = []
        properties: dict[str, dict[str, str]] = {}
        nested: list[zipfile.ZipInfo] = []
        for info in infos:
            name = info.filename
            if name == _MANIFEST:
                data = self._member(archive, info, location)
                if data is not None:
                    manifest = parse_manifest(data.decode("utf-8", errors="replace"))
            elif _POM_PROPERTIES.fullmatch(name):
                data = self._member(archive, info, location)
                if data is not None:
                    values = parse_properties(data.decode("utf-8", errors="replace"))
                    if values.get("artifactId") and values.get("version"):
                        properties[name.rsplit("/", 1)[0]] = values
            elif name.lower().endswith(_ARCHIVE_SUFFIXES) and not info.is_dir():
                nested.append(info)
        self._add_packages(location, manifest, properties)
        if not nested:
            return
        if depth >= self.limits.max_archive_depth:
            self.skipped.append(
                f"{location}: nested archives deeper than {self.limits.max_archive_depth} levels"
            )
            return
        for info in nested:
            data = self._member(archive, info, location)
            if data is not None:
                self.read(data, f"{location}:{info.filename}", depth + 1)

    def _add_packages(
        self, location: str, manifest: list[dict[str, str]], properties: dict[str, dict[str, str]]
    ) -> None:
        main_section = manifest[0] if manifest else {}
        if main_section.get("Weave-Classes"):
            # Woven classes repackage other archives; the manifest names no package of its own.
            return
        file_name, file_version = split_filename(location)
        artifacts = {values["artifactId"] for values in properties.values()}
        main: dict[str, str] | None = None
        for parent in sorted(properties):
            values = properties[parent]
            if _artifact_matches_filename(values["artifactId"], file_name, artifacts):
                main = values
                break
        if main is not None:
            self.found.append(
                _Found(main["artifactId"], main["version"], main.get("groupId", ""), location)
            )
        elif manifest:
            name = file_name or next(
                (v for f in _MANIFEST_NAME_FIELDS if (v := main_section.get(f, ""))), ""
            )
            version = file_version or next(
                (v for f in _MANIFEST_VERSION_FIELDS if (v := _manifest_field(manifest, f))), ""
            )
            if name:
                self.found.append(
                    _Found(name, version, _group_from_manifest(main_section), location)
                )
        for parent in sorted(properties):
            values = properties[parent]
            if values is main:
                continue
            self.found.append(
                _Found(values["artifactId"], values["version"], values.get("groupId", ""), location)
            )


def read_java_archive(
    data: bytes, location: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[dict[str, str]], list[str]]:
    """Return the packages (as dicts of artifact, version, group, location) and skip reasons of
    one archive and its nested archives."""
    reader = _ArchiveReader(limits)
    reader.read(data, location, 0)
    return [asdict(found) for found in reader.found], reader.skipped


class JavaArchiveCataloger(Cataloger):
    """Reads Maven coordinates out of Java archives."""

    name = "java"

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits

    def requests(self) -> tuple[FileRequest, ...]:
        """Return Java archives by file extension, reduced to their coordinates when read."""
        extensions = "|".join(ARCHIVE_EXTENSIONS)
        return (
            FileRequest(
                kind=self.name,
                pattern=rf"(?:.*/)?[^/]+\.(?:{extensions})",
                large=True,
                reduce=self._reduce,
            ),
        )

    def _reduce(self, path: str, data: bytes) -> bytes | None:
        found, skipped = read_java_archive(data, path, self._limits)
        for entry in found:
            # Keep the location relative to the archive: the file may be indexed under another path.
            entry["location"] = entry["location"][len(path) :]
        return json.dumps({"packages": found, "skipped": skipped}).encode()

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return the packages recorded when the archives were read."""
        packages: list[Package] = []
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            try:
                recorded = json.loads(indexed.data)
            except ValueError:
                continue
            skipped.extend(str(reason) for reason in recorded.get("skipped", []))
            seen: set[tuple[str, str, str]] = set()
            for entry in recorded.get("packages", []):
                key = (entry["group"], entry["artifact"], entry["version"])
                if key in seen:
                    continue
                seen.add(key)
                location = indexed.path + entry["location"]
                packages.append(
                    Package(
                        name=entry["artifact"],
                        version=entry["version"],
                        type="maven",
                        purl=make_purl(
                            "maven",
                            entry["group"] or entry["artifact"],
                            entry["artifact"],
                            entry["version"],
                        ),
                        layer_digest=indexed.layer_digest,
                        locations=(location,),
                    )
                )
        return CatalogerResult(tuple(packages), tuple(skipped))
