"""Trust roots: the roots shipped in the sigstore package, custom files, expiry reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regward.cli.main import main
from regward.signatures import PUBLIC_GOOD, STAGING, TrustRoot, TrustRootError
from regward.signatures.trust import TrustKind, named_trust_root
from tests.conftest import asset
from tests.support.sigstore import PrivateSigstore

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_public_good_matches_shipped_fixture() -> None:
    shipped = TrustRoot.public_good()
    fixture = TrustRoot.load(asset("sigstore/trust/production/trusted_root.json"))

    assert shipped.name == PUBLIC_GOOD
    assert [log.log_id for log in shipped.rekor] == [log.log_id for log in fixture.rekor]
    assert shipped.rekor_log("C0D23D6AD406973F9559F3BA2D1CA01F84147D8FFC5B8445C224F98B9591801D")


def test_staging_root_loaded() -> None:
    staging = TrustRoot.staging()

    assert staging.name == STAGING
    assert staging.fulcio[0].uri == "https://fulcio.sigstage.dev"
    assert staging.expiry_warnings(NOW) == []


def test_unknown_named_root_rejected() -> None:
    with pytest.raises(TrustRootError, match="unknown trusted root name"):
        named_trust_root("production")


def test_expiries_list_every_entry() -> None:
    entries = TrustRoot.public_good().expiries(NOW)
    kinds = {entry.kind for entry in entries}

    assert kinds == {TrustKind.FULCIO, TrustKind.REKOR, TrustKind.CT_LOG, TrustKind.TSA}
    retired = [entry for entry in entries if not entry.active]
    assert retired and all(entry.expires is not None for entry in retired)


def test_root_close_to_expiry_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sigstore = PrivateSigstore()
    document = sigstore.trusted_root()
    soon = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document["tlogs"][0]["publicKey"]["validFor"]["end"] = soon
    path = tmp_path / "root.json"
    path.write_text(json.dumps(document))
    root = TrustRoot.load(path)

    warnings = root.log_expiry_warnings()

    assert len(warnings) == 1
    assert "the last valid rekor entry expires on" in warnings[0]
    assert "update the trusted root" in caplog.text


def test_expired_role_warns(tmp_path: Path) -> None:
    document = PrivateSigstore().trusted_root()
    document["ctlogs"][0]["publicKey"]["validFor"]["end"] = "2020-01-01T00:00:00Z"
    root = TrustRoot.from_bytes(json.dumps(document).encode(), "expired")

    assert root.expiry_warnings(NOW) == [
        "trusted root expired: no ctlog entry is valid at 2026-12-01"
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{", "not a valid trusted root"),
        (b'{"mediaType": "x", "tlogs": [], "certificateAuthorities": [], "ctlogs": []}', "valid"),
        (b" " * (1024 * 1024 + 1), "too large"),
    ],
    ids=["not-json", "wrong-media-type", "too-large"],
)
def test_invalid_root_rejected(document: bytes, message: str) -> None:
    with pytest.raises(TrustRootError, match=message):
        TrustRoot.from_bytes(document, "bad")


def test_root_without_fulcio_rejected() -> None:
    document = PrivateSigstore().trusted_root()
    document["certificateAuthorities"] = []

    with pytest.raises(TrustRootError, match="no usable Fulcio certificate authority"):
        TrustRoot.from_bytes(json.dumps(document).encode(), "empty")


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(TrustRootError, match="cannot read trusted root"):
        TrustRoot.load(tmp_path / "absent.json")


def test_trust_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust", "show"]) == 0

    output = capsys.readouterr().out
    assert "trust root public-good" in output
    assert "https://rekor.sigstore.dev" in output
    assert "until 2031-10-05 (valid)" in output


def test_trust_show_json_for_private_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = PrivateSigstore().write_trusted_root(tmp_path / "root.json")

    assert main(["trust", "show", "--trusted-root", str(path), "--output", "json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["roots"][0]["name"] == str(path)
    assert {entry["kind"] for entry in document["roots"][0]["entries"]} == {
        "fulcio",
        "rekor",
        "ctlog",
    }


def test_trust_show_exit_code_on_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = PrivateSigstore().write_trusted_root(tmp_path / "root.json")

    # The test CA expires in ten years, so a warning period of 20 years reports it.
    assert main(["trust", "show", "--trusted-root", str(path), "--warn-days", "7300"]) == 1
    assert "warning: trusted root" in capsys.readouterr().err


def test_trust_show_unreadable_root(tmp_path: Path) -> None:
    assert main(["trust", "show", "--trusted-root", str(tmp_path / "absent.json")]) == 2
