"""The layer filesystem: compression, whiteouts, links, path safety and limits."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest

from regward.sbom.catalog import make_selector
from regward.sbom.catalogers import default_catalogers
from regward.sbom.filesystem import (
    Budget,
    FileSelector,
    LayerFileSystem,
    merge_layers,
    normalize_path,
    read_layer,
)
from regward.sbom.interface import FileRequest, LayerError, LimitExceededError, Limits
from tests.support.layers import (
    Entry,
    directory,
    gzip_layer,
    hardlink,
    make_tar,
    opaque,
    symlink,
    whiteout,
)

SELECTOR = make_selector(default_catalogers())
STATUS = b"Package: a\nVersion: 1\nStatus: install ok installed\n"


def index(blob: bytes, digest: str = "sha256:l1", limits: Limits | None = None):  # noqa: ANN201
    return read_layer(io.BytesIO(blob), digest, SELECTOR, Budget(limits or Limits()))


def merged(*layers: bytes, limits: Limits | None = None) -> LayerFileSystem:
    budget = Budget(limits or Limits())
    indexes = [
        read_layer(io.BytesIO(blob), f"sha256:l{n}", SELECTOR, budget)
        for n, blob in enumerate(layers, start=1)
    ]
    return merge_layers(indexes)


def paths(fs: LayerFileSystem) -> list[str]:
    return [f.path for f in fs.files()]


def test_normalize_path_cases() -> None:
    assert normalize_path("./etc/os-release") == "etc/os-release"
    assert normalize_path("/etc/os-release") == "etc/os-release"
    assert normalize_path("usr//lib/./x") == "usr/lib/x"
    assert normalize_path("a/../etc/passwd") == "etc/passwd"
    assert normalize_path("../etc/passwd") is None
    assert normalize_path("a/../../etc") is None
    assert normalize_path("usr/share/doc/") == "usr/share/doc"


def test_only_requested_files_indexed() -> None:
    fs = merged(make_tar({"var/lib/dpkg/status": STATUS, "usr/share/doc/a/README": b"x"}))
    assert paths(fs) == ["var/lib/dpkg/status"]
    found = fs.read("var/lib/dpkg/status")
    assert found is not None
    assert found.data == STATUS
    assert found.layer_digest == "sha256:l1"
    assert found.kind == "dpkg"


@pytest.mark.parametrize("compress", ["tar", "gzip", "gzip-multimember"])
def test_compressions_read_alike(compress: str) -> None:
    tar = make_tar({"var/lib/dpkg/status": STATUS})
    blob = {
        "tar": tar,
        "gzip": gzip_layer(tar),
        "gzip-multimember": gzip.compress(tar[:700]) + gzip.compress(tar[700:]),
    }[compress]
    fs = merged(blob)
    found = fs.read("var/lib/dpkg/status")
    assert found is not None
    assert found.data == STATUS


def test_zstd_layer_read() -> None:
    zstd = pytest.importorskip("backports.zstd")
    fs = merged(zstd.compress(make_tar({"var/lib/dpkg/status": STATUS})))
    assert paths(fs) == ["var/lib/dpkg/status"]


def test_zstd_without_library_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def missing(name: str, package: str | None = None):  # noqa: ANN202
        if "zstd" in name or name == "zstandard":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", missing)
    blob = b"\x28\xb5\x2f\xfd" + b"\x00" * 100
    with pytest.raises(LayerError, match="no zstd library is installed"):
        index(blob)


def test_corrupt_gzip_is_layer_error() -> None:
    blob = bytearray(gzip_layer(make_tar({"var/lib/dpkg/status": STATUS * 50})))
    blob[40:60] = b"\xff" * 20
    with pytest.raises(LayerError, match="corrupt"):
        index(bytes(blob))


def test_truncated_gzip_is_layer_error() -> None:
    blob = gzip_layer(make_tar({"var/lib/dpkg/status": STATUS}))
    with pytest.raises(LayerError):
        index(blob[: len(blob) // 2])


def test_not_a_tar_is_layer_error() -> None:
    with pytest.raises(LayerError, match="not a valid tar"):
        index(b"this is not a tar archive at all" * 40)


def test_whiteout_removes_lower_file() -> None:
    lower = make_tar(
        {
            "usr/lib/python3/dist-packages/a-1.dist-info/METADATA": b"Name: a\nVersion: 1\n",
            "usr/lib/python3/dist-packages/b-1.dist-info/METADATA": b"Name: b\nVersion: 1\n",
        }
    )
    upper = make_tar([whiteout("usr/lib/python3/dist-packages/a-1.dist-info")])
    fs = merged(lower, upper)
    assert paths(fs) == ["usr/lib/python3/dist-packages/b-1.dist-info/METADATA"]


def test_whiteout_of_parent_removes_subtree() -> None:
    lower = make_tar({"var/lib/dpkg/status": STATUS, "etc/os-release": b"ID=debian\n"})
    upper = make_tar([whiteout("var")])
    fs = merged(lower, upper)
    assert paths(fs) == ["etc/os-release"]


def test_whiteout_applies_to_lower_layers_only() -> None:
    lower = make_tar({"var/lib/dpkg/status": b"Package: old\nVersion: 1\n"})
    upper = make_tar([whiteout("var/lib/dpkg/status"), Entry("var/lib/dpkg/status", STATUS)])
    fs = merged(lower, upper)
    found = fs.read("var/lib/dpkg/status")
    assert found is not None
    assert found.data == STATUS
    assert found.layer_digest == "sha256:l2"


def test_opaque_directory_hides_lower_entries() -> None:
    lower = make_tar(
        {
            "app/node_modules/a/package.json": b'{"name":"a","version":"1.0.0"}',
            "app/node_modules/b/package.json": b'{"name":"b","version":"1.0.0"}',
        }
    )
    upper = make_tar([opaque("app/node_modules"), Entry("app/node_modules/c/package.json", b"{}")])
    fs = merged(lower, upper)
    assert paths(fs) == ["app/node_modules/c/package.json"]


@pytest.mark.parametrize("name", [".wh...", ".wh..", ".wh."])
def test_invalid_whiteout_names_are_skipped(name: str) -> None:
    lower = make_tar({"var/lib/dpkg/status": STATUS})
    upper = make_tar([Entry(f"var/lib/dpkg/{name}")])
    fs = merged(lower, upper)
    assert paths(fs) == ["var/lib/dpkg/status"]
    assert any("invalid whiteout" in reason for reason in fs.skipped)


def test_upper_file_replaces_lower() -> None:
    fs = merged(
        make_tar({"var/lib/dpkg/status": b"Package: old\n"}),
        make_tar({"var/lib/dpkg/status": STATUS}),
    )
    found = fs.read("var/lib/dpkg/status")
    assert found is not None
    assert found.data == STATUS


def test_dotdot_entry_is_skipped() -> None:
    fs = merged(make_tar([Entry("../../var/lib/dpkg/status", STATUS)]))
    assert paths(fs) == []
    assert any("outside the image root" in reason for reason in fs.skipped)


def test_absolute_entry_stays_in_root() -> None:
    fs = merged(make_tar([Entry("/var/lib/dpkg/status", STATUS)]))
    assert paths(fs) == ["var/lib/dpkg/status"]


def test_symlink_resolves_inside_root() -> None:
    fs = merged(
        make_tar(
            [
                Entry("usr/lib/os-release", b"ID=debian\nVERSION_ID=12\n"),
                symlink("etc/os-release", "../usr/lib/os-release"),
            ]
        )
    )
    found = fs.read("etc/os-release")
    assert found is not None
    assert found.path == "usr/lib/os-release"


def test_symlink_escape_is_clamped_at_root() -> None:
    fs = merged(
        make_tar(
            [
                Entry("etc/os-release", b"ID=inside\n"),
                symlink("a/link", "../../../../../etc/os-release"),
                symlink("a/abs", "/etc/os-release"),
            ]
        )
    )
    for link in ("a/link", "a/abs"):
        found = fs.read(link)
        assert found is not None
        assert found.data == b"ID=inside\n"


def test_symlink_loop_returns_none() -> None:
    fs = merged(make_tar([symlink("etc/os-release", "loop"), symlink("etc/loop", "os-release")]))
    assert fs.read("etc/os-release") is None


def test_file_under_symlinked_directory_gets_real_path() -> None:
    fs = merged(
        make_tar(
            [
                directory("usr/lib/sysimage/rpm"),
                symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm"),
            ]
        ),
        make_tar([Entry("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\x00")]),
    )
    assert paths(fs) == ["usr/lib/sysimage/rpm/rpmdb.sqlite"]


def test_parent_symlink_pointing_outside_stays_inside() -> None:
    fs = merged(make_tar([symlink("var", "/../../../tmp"), Entry("var/lib/dpkg/status", STATUS)]))
    assert paths(fs) == ["tmp/lib/dpkg/status"]


def test_hardlink_to_captured_file() -> None:
    fs = merged(
        make_tar(
            [
                Entry("usr/lib/python3/x-1.dist-info/METADATA", b"Name: x\nVersion: 1\n"),
                hardlink(
                    "usr/lib/python3/y-1.dist-info/METADATA",
                    "usr/lib/python3/x-1.dist-info/METADATA",
                ),
            ]
        )
    )
    assert paths(fs) == [
        "usr/lib/python3/x-1.dist-info/METADATA",
        "usr/lib/python3/y-1.dist-info/METADATA",
    ]


def test_hardlink_to_lower_layer_file() -> None:
    fs = merged(
        make_tar({"var/lib/dpkg/status": STATUS}),
        make_tar([hardlink("var/lib/dpkg/status.d/a", "var/lib/dpkg/status")]),
    )
    found = fs.read("var/lib/dpkg/status.d/a")
    assert found is not None
    assert found.data == STATUS


def test_hardlink_outside_root_is_skipped() -> None:
    fs = merged(make_tar([hardlink("var/lib/dpkg/status", "../../etc/shadow")]))
    assert paths(fs) == []
    assert any("hard link" in reason for reason in fs.skipped)


def test_hardlink_to_unindexed_file_is_reported() -> None:
    fs = merged(
        make_tar([Entry("etc/passwd", b"root"), hardlink("var/lib/dpkg/status", "etc/passwd")])
    )
    assert paths(fs) == []
    assert any("was not indexed" in reason for reason in fs.skipped)


def test_oversized_metadata_file_is_skipped() -> None:
    limits = Limits(max_file_bytes=10)
    fs = merged(make_tar({"var/lib/dpkg/status": STATUS}), limits=limits)
    assert paths(fs) == []
    assert any("over the 10-byte read limit" in reason for reason in fs.skipped)


def test_huge_declared_size_is_rejected() -> None:
    raw = bytearray(make_tar({"var/lib/dpkg/status": STATUS}))
    info = tarfile.TarInfo("var/lib/dpkg/status")
    info.size = 10**15
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(LimitExceededError, match="declares"):
        index(header + bytes(raw[512:]))


def test_truncated_entry_data_is_layer_error() -> None:
    tar = make_tar({"var/lib/dpkg/status": STATUS * 100})
    with pytest.raises(LayerError):
        index(tar[:1024])


def test_too_many_entries() -> None:
    tar = make_tar({f"f{n}": b"" for n in range(20)})
    with pytest.raises(LimitExceededError, match="max_entries"):
        index(tar, limits=Limits(max_entries=10))


def test_decompression_bomb_stops_at_limit() -> None:
    # 64 MiB of zeros inside one tar entry compress to about 64 KiB.
    info = tarfile.TarInfo("big")
    info.size = 64 * 1024 * 1024
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    blob = zlib.compress(raw.getvalue(), 9, wbits=31)
    assert len(blob) < 1024 * 1024
    with pytest.raises(LimitExceededError, match="max_decompressed_bytes"):
        index(blob, limits=Limits(max_decompressed_bytes=8 * 1024 * 1024))


def test_long_path_is_skipped() -> None:
    fs = merged(
        make_tar([Entry("a/" * 100 + "var/lib/dpkg/status", STATUS)]),
        limits=Limits(max_path_length=100),
    )
    assert paths(fs) == []
    assert any("longer than 100" in reason for reason in fs.skipped)


def test_index_byte_budget() -> None:
    tar = make_tar({"var/lib/dpkg/status": STATUS, "lib/apk/db/installed": STATUS})
    with pytest.raises(LimitExceededError, match="max_index_bytes"):
        index(tar, limits=Limits(max_index_bytes=len(STATUS) + 1))


def test_magic_request_reads_executables_only() -> None:
    selector = FileSelector([FileRequest(kind="elf", magic=b"\x7fELF", reduce=lambda _p, d: d[:4])])
    elf = b"\x7fELF" + bytes(100)
    tar = make_tar(
        [
            Entry("bin/tool", elf, mode=0o755),
            Entry("lib/data.so", elf),
            Entry("bin/sh", b"#!" + bytes(100), mode=0o755),
        ]
    )
    layer = read_layer(io.BytesIO(tar), "sha256:l1", selector, Budget())
    fs = merge_layers([layer])
    assert [(f.path, f.data) for f in fs.files()] == [("bin/tool", b"\x7fELF")]


def test_selector_rejects_capturing_groups() -> None:
    with pytest.raises(ValueError, match="capturing groups"):
        FileSelector([FileRequest(kind="x", pattern=r"(a|b)")])


def test_deep_directories_do_not_recurse() -> None:
    deep = "d/" * 1500 + "var/lib/dpkg/status"
    fs = merged(make_tar([Entry(deep, STATUS), Entry("var/lib/dpkg/status", STATUS)]))
    assert paths(fs) == [deep, "var/lib/dpkg/status"]
