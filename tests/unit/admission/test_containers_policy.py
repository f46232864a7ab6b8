"""Translation of a regward policy into containers-policy.json and registries.d."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from regward.admission.containers_policy import (
    ExportError,
    export_containers_policy,
    write_containers_policy,
)
from regward.cli.main import main
from regward.policy import parse_policy
from regward.signatures.sign import generate_keypair

HOST = "gate.example.com:5050"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, bytes]:
    result = {}
    for name in ("ci", "release", "rekor"):
        _, public = generate_keypair()
        (tmp_path / f"{name}.pub").write_bytes(public)
        result[name] = public
    return result


def load(tmp_path: Path, text: str) -> Any:
    return parse_policy(text, base_dir=tmp_path)


def test_literal_prefix_and_registry_scopes(tmp_path: Path, keys: dict[str, bytes]) -> None:
    policy = load(
        tmp_path,
        """
defaultAction: deny
rules:
  - name: team
    repositories: ["team/**"]
    signatures:
      authorities:
        - name: ci
          key: {path: ci.pub}
  - name: app
    repositories: ["team/app"]
    signatures:
      authorities:
        - name: release
          key: {path: release.pub}
  - name: open
    repositories: ["public/**"]
""",
    )
    exported = export_containers_policy(policy, [HOST])
    docker = exported.policy["transports"]["docker"]
    assert exported.policy["default"] == [{"type": "reject"}]
    assert list(docker) == [HOST, f"{HOST}/public", f"{HOST}/team", f"{HOST}/team/app"]
    assert docker[HOST] == [{"type": "reject"}]
    assert docker[f"{HOST}/public"] == [{"type": "insecureAcceptAnything"}]
    assert docker[f"{HOST}/team"] == [
        {
            "type": "sigstoreSigned",
            "keyData": base64.b64encode(keys["ci"]).decode(),
            "signedIdentity": {"type": "matchRepository"},
        }
    ]
    assert docker[f"{HOST}/team/app"][0]["keyData"] == base64.b64encode(keys["release"]).decode()
    assert exported.registries_d == {"docker": {HOST: {"use-sigstore-attachments": True}}}
    assert exported.notes == ()


def test_catch_all_and_default_allow(tmp_path: Path, keys: dict[str, bytes]) -> None:
    policy = load(
        tmp_path,
        """
defaultAction: allow
rules:
  - name: all
    repositories: ["**"]
    signatures:
      authorities:
        - {name: ci, key: {path: ci.pub}}
""",
    )
    docker = export_containers_policy(policy, [HOST, "Registry.Internal:5000"]).policy[
        "transports"
    ]["docker"]
    assert list(docker) == [HOST, "registry.internal:5000"]
    assert docker[HOST][0]["type"] == "sigstoreSigned"

    open_policy = load(tmp_path, "defaultAction: allow\nrules: []\n")
    docker = export_containers_policy(open_policy, [HOST]).policy["transports"]["docker"]
    assert docker == {HOST: [{"type": "insecureAcceptAnything"}]}


def test_several_authorities_use_key_lists(tmp_path: Path, keys: dict[str, bytes]) -> None:
    policy = load(
        tmp_path,
        """
rules:
  - name: app
    repositories: ["team/app"]
    signatures:
      authorities:
        - {name: ci, key: {path: ci.pub}, tlog: required, rekorPublicKey: {path: rekor.pub}}
        - name: release
          key: {path: release.pub}
          tlog: required
          rekorPublicKey: {path: rekor.pub}
""",
    )
    exported = export_containers_policy(policy, [HOST])
    requirement = exported.policy["transports"]["docker"][f"{HOST}/team/app"][0]
    assert requirement["keyDatas"] == [
        base64.b64encode(keys["ci"]).decode(),
        base64.b64encode(keys["release"]).decode(),
    ]
    assert requirement["rekorPublicKeyData"] == base64.b64encode(keys["rekor"]).decode()
    assert [note.blocking for note in exported.notes] == [False]
    assert "containers/image reads from version 5.33 on" in str(exported.notes[0])


def test_key_files_when_key_dir_given(tmp_path: Path, keys: dict[str, bytes]) -> None:
    policy = load(
        tmp_path,
        "rules:\n  - name: app\n    repositories: [app]\n    signatures:\n"
        "      authorities: [{name: ci, key: {path: ci.pub}}]\n",
    )
    exported = export_containers_policy(policy, [HOST], key_dir=Path("/etc/containers/regward"))
    requirement = exported.policy["transports"]["docker"][f"{HOST}/app"][0]
    assert requirement["keyPath"] == "/etc/containers/regward/app-ci.pub"
    assert exported.key_files == {"app-ci.pub": keys["ci"]}

    written = write_containers_policy(exported, tmp_path / "out")
    assert [path.relative_to(tmp_path / "out").as_posix() for path in written] == [
        "policy.json",
        "registries.d/regward.yaml",
        "keys/app-ci.pub",
    ]
    assert (tmp_path / "out/keys/app-ci.pub").read_bytes() == keys["ci"]


def test_unsupported_features_noted(tmp_path: Path, keys: dict[str, bytes]) -> None:
    policy = load(
        tmp_path,
        """
rules:
  - name: globs
    repositories: ["team/*", "app-?", "a/**/b"]
  - name: warned
    repositories: ["x"]
    mode: warn
    signatures:
      authorities:
        - {name: ci, key: {path: ci.pub}}
  - name: sigrepo
    repositories: ["z"]
    onError: allow
    signatures:
      indexPolicy: self-or-children
      authorities:
        - {name: ci, key: {path: ci.pub}, signatureRepository: signatures/x}
    immutableTags: {patterns: ["*"]}
  - name: mixed
    repositories: ["y"]
    signatures:
      authorities:
        - {name: ci, key: {path: ci.pub}, tlog: required, rekorPublicKey: {path: rekor.pub}}
        - {name: release, key: {path: release.pub}}
  - name: twin
    repositories: ["y/**"]
""",
    )
    exported = export_containers_policy(policy, [HOST])
    blocking = sorted(str(note) for note in exported.notes if note.blocking)
    assert blocking == [
        "rule globs: repository glob 'a/**/b' has no policy.json scope; only literal "
        "repositories, 'prefix/**' and '**' translate exactly",
        "rule globs: repository glob 'app-?' has no policy.json scope; only literal "
        "repositories, 'prefix/**' and '**' translate exactly",
        "rule globs: repository glob 'team/*' has no policy.json scope; only literal "
        "repositories, 'prefix/**' and '**' translate exactly",
        "rule mixed: authorities disagree on tlog: required; policy.json applies one Rekor "
        "requirement to all keys of a rule",
        "rule sigrepo: authority ci: signatureRepository signatures/x has no counterpart; "
        "containers/image reads signatures from the image's own repository",
        "rule twin: repository glob 'y/**' maps to the same scope as 'y' of rule mixed; "
        "policy.json applies that rule to both",
    ]
    others = sorted(str(note) for note in exported.notes if not note.blocking)
    assert others == [
        "rule mixed: 2 authorities become keyDatas, which containers/image reads from version "
        "5.33 on; older versions reject the whole policy.json",
        "rule sigrepo: immutableTags applies to pushes through the gate and has no pull-side form",
        "rule sigrepo: indexPolicy self-or-children has no counterpart; containers/image checks "
        "the signature of the manifest it pulls, so an index must be signed itself",
        "rule sigrepo: onError: allow has no counterpart; a signature that cannot be fetched "
        "rejects the pull",
        "rule warned: mode warn has no pull-side form; images are accepted without a check or "
        "a warning",
    ]
    docker = exported.policy["transports"]["docker"]
    assert docker[f"{HOST}/x"] == [{"type": "insecureAcceptAnything"}]
    assert f"{HOST}/team" not in docker


def test_export_needs_valid_registry(tmp_path: Path) -> None:
    policy = load(tmp_path, "rules: []\n")
    with pytest.raises(ExportError, match="expected at least one registry host"):
        export_containers_policy(policy, [])
    with pytest.raises(ExportError, match="invalid registry 'bad host'"):
        export_containers_policy(policy, ["bad host"])


def test_cli_writes_files(
    tmp_path: Path, keys: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - name: app\n    repositories: ['team/**']\n    signatures:\n"
        "      authorities: [{name: ci, key: {path: ci.pub}}]\n"
    )
    output = tmp_path / "out"
    code = main(
        [
            "export",
            "containers-policy",
            "--policy",
            str(policy),
            "--output",
            str(output),
            "--registry",
            HOST,
        ]
    )
    assert code == 0
    document = json.loads((output / "policy.json").read_text())
    assert f"{HOST}/team" in document["transports"]["docker"]
    assert yaml.safe_load((output / "registries.d/regward.yaml").read_text()) == {
        "docker": {HOST: {"use-sigstore-attachments": True}}
    }
    assert "wrote" in capsys.readouterr().err


def test_cli_refuses_unsupported_unless_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - name: globs\n    repositories: ['team/*']\n")
    output = tmp_path / "out"
    arguments = ["export", "containers-policy", "--policy", str(policy), "--output", str(output)]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "unsupported: rule globs: repository glob 'team/*' has no policy.json scope" in err
    assert "nothing was written (use --skip-unsupported" in err
    assert not output.exists()

    assert main([*arguments, "--skip-unsupported"]) == 0
    document = json.loads((output / "policy.json").read_text())
    assert document["transports"]["docker"] == {"127.0.0.1:5050": [{"type": "reject"}]}

    assert main([*arguments, "--key-dir", "relative/keys"]) == 2
    assert "--key-dir must be an absolute path" in capsys.readouterr().err


def test_keyless_only_rule_rejects_and_notes(tmp_path: Path) -> None:

    policy = parse_policy(
        "rules:\n"
        "  - name: gha\n"
        "    repositories: ['prod/**']\n"
        "    signatures:\n"
        "      authorities:\n"
        "        - name: gha\n"
        "          keyless: {issuer: 'https://token.actions.githubusercontent.com',"
        " subjectRegExp: '^https://github.com/acme/.+$'}\n",
        base_dir=tmp_path,
    )

    export = export_containers_policy(policy, ["registry.example"])

    scopes = export.policy["transports"]["docker"]
    assert scopes["registry.example/prod"] == [{"type": "reject"}]
    assert any(note.blocking and "keyless" in note.message for note in export.notes)
