"""The forward-only tar reader, against archives written by the standard library's tarfile."""

from __future__ import annotations

import io
import tarfile

import pytest

from regward.sbom._tar import TarFormatError, TarReader


def archive(fmt: int, names: list[str], content: bytes = b"data", link: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        entry = tarfile.TarInfo("link")
        entry.type = tarfile.SYMTYPE
        entry.linkname = link or "target"
        tar.addfile(entry)
    return raw.getvalue()


@pytest.mark.parametrize(
    ("fmt", "names", "link"),
    [
        (tarfile.USTAR_FORMAT, ["a", "p" * 120 + "/b"], "target"),
        (tarfile.GNU_FORMAT, ["a", "d/" * 60 + "deep"], "t/" + "x" * 150),
        (tarfile.PAX_FORMAT, ["a", "d/" * 60 + "deep", "ünïcode"], "t/" + "x" * 150),
    ],
)
def test_names_match_tarfile(fmt: int, names: list[str], link: str) -> None:
    blob = archive(fmt, names, link=link)
    expected = [m.name for m in tarfile.open(fileobj=io.BytesIO(blob))]
    reader = TarReader(io.BytesIO(blob))
    seen = []
    for entry in reader:
        seen.append(entry.name)
        if entry.kind == "0":
            assert reader.read(100) == b"data"
        else:
            assert entry.linkname == link
    assert seen == expected


def test_unread_data_is_skipped() -> None:
    blob = archive(tarfile.PAX_FORMAT, ["one", "two"], content=b"z" * 5000)
    assert [e.name for e in TarReader(io.BytesIO(blob))] == ["one", "two", "link"]


def test_bad_checksum_is_rejected() -> None:
    blob = bytearray(archive(tarfile.GNU_FORMAT, ["a"]))
    blob[0] ^= 0x01
    with pytest.raises(TarFormatError, match="checksum"):
        list(TarReader(io.BytesIO(bytes(blob))))


def test_truncated_header_is_rejected() -> None:
    blob = archive(tarfile.GNU_FORMAT, ["a"])
    with pytest.raises(TarFormatError):
        list(TarReader(io.BytesIO(blob[:300])))


def test_oversized_pax_header_is_rejected() -> None:
    info = tarfile.TarInfo("a")
    info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(TarFormatError, match="extended header"):
        list(TarReader(io.BytesIO(raw.getvalue())))


def test_base256_size_is_read() -> None:
    info = tarfile.TarInfo("big")
    info.size = 9 * 1024**3
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    entry = next(iter(TarReader(io.BytesIO(header))))
    assert entry.size == 9 * 1024**3
