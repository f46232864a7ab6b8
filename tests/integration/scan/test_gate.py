"""Pull decisions of the running gate under rules with a `vulnerabilities` section."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from regward.cli.main import main
from tests.integration.scan.conftest import (
    GITPYTHON,
    JSON_LOGIC,
    REQUESTS,
    SEARCHOR,
    feed_dir,
    python_layer,
)
from tests.support.gate import RunningGate, run_gate
from tests.support.images import OCI_INDEX, OCI_MANIFEST
from tests.support.layers import push_layers
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry

ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"

POLICY = """\
defaultAction: deny
rules:
  - name: scanned
    repositories: ["team/**"]
    vulnerabilities:
{section}
"""


def write_policy(directory: Path, section: str, name: str = "policy.yaml") -> Path:
    indented = "\n".join("      " + line for line in section.strip("\n").splitlines())
    path = directory / name
    path.write_text(POLICY.format(section=indented))
    return path


def pull(gate: RunningGate, repository: str, reference: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{gate.url}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["errors"][0]


def reason_codes(error: dict[str, object]) -> list[str]:
    detail = error["detail"]
    assert isinstance(detail, dict)
    return [reason["code"] for reason in detail["reasons"]]


def feed_args() -> tuple[str, ...]:
    return ("--feed", str(feed_dir()))


def test_critical_finding_denied_then_allowlisted(
    tmp_path: Path, registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    denying = write_policy(tmp_path, "denyAtOrAbove: critical", "deny.yaml")
    allowing = write_policy(
        tmp_path,
        "denyAtOrAbove: critical\n"
        "allowlist:\n"
        "  - id: CVE-2023-43364\n"
        "    expires: 2099-12-31\n"
        '    reason: "search queries come from operators only"',
        "allow.yaml",
    )

    with run_gate(tmp_path, registry.url, denying, extra_args=feed_args()) as gate:
        denied_status, error = pull(gate, "team/search", "v1")
    with run_gate(tmp_path, registry.url, allowing, extra_args=feed_args()) as gate:
        allowed_status, _ = pull(gate, "team/search", "v1")

    assert denied_status == 403
    assert error["code"] == "DENIED"
    message = str(error["message"])
    assert "PYSEC-2023-262" in message
    assert "searchor 2.4.0" in message
    assert "fixed in 2.4.2" in message
    assert digest in message
    assert reason_codes(error) == ["vulnerability-found"]
    assert allowed_status == 200

    check_denied = main(
        ["check", f"{registry.host}/team/search:v1", "--policy", str(denying), *feed_args()]
    )
    denied_out = capsys.readouterr().out
    check_allowed = main(
        ["check", f"{registry.host}/team/search:v1", "--policy", str(allowing), *feed_args()]
    )
    assert check_denied == 1
    assert "PYSEC-2023-262" in denied_out
    assert check_allowed == 0


def test_check_json_lists_findings(
    tmp_path: Path, registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    push_layers(registry.url, "team/git", "v1", [python_layer(GITPYTHON)])
    policy = write_policy(tmp_path, "denyAtOrAbove: medium")

    status = main(
        [
            "check",
            f"{registry.host}/team/git:v1",
            "--policy",
            str(policy),
            "--output",
            "json",
            *feed_args(),
        ]
    )
    document = json.loads(capsys.readouterr().out)

    assert status == 1
    messages = [reason["message"] for reason in document["reasons"]]
    assert [reason["code"] for reason in document["reasons"]] == ["vulnerability-found"] * 2
    assert "PYSEC-2023-161" in messages[0]
    assert "high" in messages[0]
    assert "PYSEC-2023-165" in messages[1]


def test_check_missing_feed_is_error(
    tmp_path: Path, registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    push_layers(registry.url, "team/feedless", "v1", [python_layer(REQUESTS)])
    policy = write_policy(tmp_path, "denyAtOrAbove: high")

    status = main(
        [
            "check",
            f"{registry.host}/team/feedless:v1",
            "--policy",
            str(policy),
            "--feed",
            str(tmp_path / "absent"),
        ]
    )

    assert status == 2
    assert "does not exist" in capsys.readouterr().err


def test_unscanned_image_follows_on_unscanned(tmp_path: Path, registry: RunningRegistry) -> None:
    not_a_tar = b"this layer is plain text, not a tar archive\n" * 20
    push_layers(registry.url, "team/strict/app", "v1", [not_a_tar])
    push_layers(registry.url, "team/lenient/app", "v1", [not_a_tar])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "defaultAction: deny\n"
        "rules:\n"
        "  - name: strict\n"
        '    repositories: ["team/strict/**"]\n'
        "    vulnerabilities: {onUnscanned: deny}\n"
        "  - name: lenient\n"
        '    repositories: ["team/lenient/**"]\n'
        "    vulnerabilities: {onUnscanned: allow}\n"
    )

    with run_gate(tmp_path, registry.url, policy, extra_args=feed_args()) as gate:
        strict_status, error = pull(gate, "team/strict/app", "v1")
        lenient_status, _ = pull(gate, "team/lenient/app", "v1")

    assert strict_status == 403
    assert reason_codes(error) == ["unscanned"]
    assert "cannot be scanned" in str(error["message"])
    assert "onUnscanned: allow" in str(error["message"])
    assert lenient_status == 200


def test_fixable_only_ignores_unfixed_critical(tmp_path: Path, registry: RunningRegistry) -> None:
    push_layers(registry.url, "team/logic", "v1", [python_layer(JSON_LOGIC)])
    strict = write_policy(tmp_path, "denyAtOrAbove: critical", "strict.yaml")
    fixable = write_policy(tmp_path, "denyAtOrAbove: critical\nfixableOnly: true", "fixable.yaml")

    with run_gate(tmp_path, registry.url, strict, extra_args=feed_args()) as gate:
        strict_status, error = pull(gate, "team/logic", "v1")
    with run_gate(tmp_path, registry.url, fixable, extra_args=feed_args()) as gate:
        fixable_status, _ = pull(gate, "team/logic", "v1")

    assert strict_status == 403
    assert "PYSEC-2023-209" in str(error["message"])
    assert "no fixed version is known" in str(error["message"])
    assert fixable_status == 200


def test_unknown_severity_setting(tmp_path: Path, registry: RunningRegistry) -> None:
    push_layers(registry.url, "team/requests", "v1", [python_layer(REQUESTS)])
    medium = write_policy(tmp_path, "denyAtOrAbove: high\nunknownSeverity: medium", "medium.yaml")
    high = write_policy(tmp_path, "denyAtOrAbove: high\nunknownSeverity: high", "high.yaml")

    with run_gate(tmp_path, registry.url, medium, extra_args=feed_args()) as gate:
        medium_status, _ = pull(gate, "team/requests", "v1")
    with run_gate(tmp_path, registry.url, high, extra_args=feed_args()) as gate:
        high_status, error = pull(gate, "team/requests", "v1")

    assert medium_status == 200
    assert high_status == 403
    message = str(error["message"])
    assert "PYSEC-2018-28" in message
    assert "severity unknown, counted as high" in message


def test_expired_allowlist_entry_denies_and_warns(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    policy = write_policy(
        tmp_path,
        "denyAtOrAbove: critical\n"
        "allowlist:\n"
        "  - id: PYSEC-2023-262\n"
        "    expires: 2020-01-31\n"
        "    reason: temporary exception",
    )

    with run_gate(tmp_path, registry.url, policy, extra_args=feed_args()) as gate:
        status, error = pull(gate, "team/search", "v1")
        log = gate.log_text()

    assert status == 403
    assert "allowlist entry PYSEC-2023-262 expired on 2020-01-31" in str(error["message"])
    assert "expired on 2020-01-31 and no longer applies" in log


def test_second_gate_reuses_stored_scan(tmp_path: Path, registry: RunningRegistry) -> None:
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    policy = write_policy(tmp_path, "denyAtOrAbove: critical")
    database = f"sqlite:///{tmp_path / 'shared.db'}"

    with run_gate(
        tmp_path, registry.url, policy, database=database, extra_args=feed_args()
    ) as gate:
        first_status, _ = pull(gate, "team/search", "v1")
        first_log = gate.log_text()
    with run_gate(
        tmp_path, registry.url, policy, database=database, extra_args=feed_args()
    ) as gate:
        second_status, error = pull(gate, "team/search", "v1")
        second_log = gate.log_text()

    assert first_status == 403
    assert "cataloged team/search@sha256:" in first_log
    assert second_status == 403
    assert "PYSEC-2023-262" in str(error["message"])
    assert "reusing the stored scan of sha256:" in second_log
    assert "cataloged team/search" not in second_log


def test_gate_without_feed_treats_images_as_unscanned(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    policy = write_policy(tmp_path, "denyAtOrAbove: critical")

    with run_gate(tmp_path, registry.url, policy) as gate:
        status, error = pull(gate, "team/search", "v1")
        log = gate.log_text()

    assert status == 403
    assert reason_codes(error) == ["unscanned"]
    assert "no vulnerability feed" in str(error["message"])
    assert "--feed" in str(error["message"])
    assert "no vulnerability feed (--feed)" in log


def test_gate_rejects_missing_feed_path(tmp_path: Path, registry: RunningRegistry) -> None:
    policy = write_policy(tmp_path, "denyAtOrAbove: critical")

    with (
        pytest.raises(RuntimeError, match="does not exist"),
        run_gate(tmp_path, registry.url, policy, extra_args=("--feed", str(tmp_path / "absent"))),
    ):
        pass


def test_push_through_gate_scans_in_background(tmp_path: Path, registry: RunningRegistry) -> None:
    policy = write_policy(tmp_path, "denyAtOrAbove: critical")

    with run_gate(tmp_path, registry.url, policy, extra_args=feed_args()) as gate:
        digest = push_layers(gate.url, "team/pushed", "v1", [python_layer(SEARCHOR)])
        deadline = time.monotonic() + 60
        while f"background scan of team/pushed@{digest}" not in gate.log_text():
            assert time.monotonic() < deadline, gate.log_text()
            time.sleep(0.1)
        status, error = pull(gate, "team/pushed", "v1")
        log = gate.log_text()

    assert status == 403
    assert "PYSEC-2023-262" in str(error["message"])
    assert log.count(f"cataloged team/pushed@{digest}") == 1
    assert f"reusing the stored scan of {digest}" in log


def test_config_file_feed_key(tmp_path: Path, registry: RunningRegistry) -> None:
    push_layers(registry.url, "team/search", "v1", [python_layer(SEARCHOR)])
    policy = write_policy(tmp_path, "denyAtOrAbove: critical")
    config = tmp_path / "gate.yaml"
    config.write_text(f"feed: {feed_dir()}\nscanTimeoutSeconds: 60\n")

    with run_gate(tmp_path, registry.url, policy, config=config) as gate:
        status, error = pull(gate, "team/search", "v1")

    assert status == 403
    assert reason_codes(error) == ["vulnerability-found"]
