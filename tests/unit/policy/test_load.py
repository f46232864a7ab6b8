"""Tests of loading policy files: the accepted shape, defaults, revision and every rejection."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from textwrap import dedent

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from regward.errors import RegwardError
from regward.policy import (
    MAX_POLICY_BYTES,
    BlobAccess,
    DefaultAction,
    IndexPolicy,
    Mode,
    OnError,
    PolicyError,
    TlogMode,
    load_policy,
    parse_policy,
)
from tests.conftest import asset
from tests.unit.policy.conftest import WritePolicy, public_pem


def signed_rule(authority: str) -> str:
    """Return a policy with one rule whose only authority is the indented YAML `authority`."""
    body = "\n".join("        " + line for line in dedent(authority).strip().splitlines())
    return (
        "rules:\n"
        "  - name: ci-signed\n"
        '    repositories: ["test/**"]\n'
        "    signatures:\n"
        "      authorities:\n"
        f"{body}\n"
    )


def load_text(write_policy: WritePolicy, text: str) -> None:
    """Load `text` as a policy file, for tests that expect an error."""
    load_policy(write_policy(dedent(text)))


# --- accepted policies ----------------------------------------------------------------------


def test_example_fixture_loads() -> None:
    policy = load_policy(asset("policy/example.yaml"))

    assert policy.default_action is DefaultAction.DENY
    assert policy.blobs is BlobAccess.REFERENCED_ONLY
    assert len(policy.rules) == 1
    rule = policy.rules[0]
    assert rule.name == "ci-signed"
    assert rule.repositories == ("test/**",)
    assert rule.mode is Mode.ENFORCE
    assert rule.on_error is OnError.DENY
    assert rule.signatures is not None
    assert rule.signatures.index_policy is IndexPolicy.SELF
    assert [authority.name for authority in rule.signatures.authorities] == ["ci"]
    key_bytes = asset("policy/cosign.pub").read_bytes()
    assert rule.signatures.authorities[0].key_pem == key_bytes
    assert rule.immutable_tags is not None
    assert rule.immutable_tags.patterns == ("*",)
    assert rule.immutable_tags.exclude == ("latest",)
    policy_bytes = asset("policy/example.yaml").read_bytes()
    assert policy.revision == hashlib.sha256(policy_bytes + key_bytes).hexdigest()
    assert policy.source == str(asset("policy/example.yaml"))


def test_defaults_apply(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy(signed_rule("- name: ci\n  key: {path: cosign.pub}")))

    assert policy.default_action is DefaultAction.DENY
    assert policy.blobs is BlobAccess.REFERENCED_ONLY
    rule = policy.rules[0]
    assert rule.mode is Mode.ENFORCE
    assert rule.on_error is OnError.DENY
    assert rule.immutable_tags is None
    assert rule.signatures is not None
    assert rule.signatures.index_policy is IndexPolicy.SELF
    authority = rule.signatures.authorities[0]
    assert authority.tlog == TlogMode.OPTIONAL
    assert authority.signature_repository is None
    assert authority.rekor_public_key_pem is None


def test_every_option_set(write_policy: WritePolicy, key_dir: Path) -> None:
    inline = public_pem().decode()
    text = dedent(
        """\
        defaultAction: allow
        blobs: open
        rules:
          - name: ci-signed
            repositories: ["test/**", "prod/app"]
            mode: warn
            onError: allow
            signatures:
              indexPolicy: self-or-children
              authorities:
                - name: ci
                  key: {path: cosign.pub}
                  signatureRepository: registry.example:5000/sigs/app
                  rekorPublicKey: {path: rekor.pub}
                  tlog: required
                - name: release
                  key:
                    pem: |
        """
    )
    text += "".join(f"                {line}\n" for line in inline.splitlines())
    text += '  - name: public\n    repositories: ["public/*"]\n    mode: audit\n'
    policy = load_policy(write_policy(text))

    assert policy.default_action is DefaultAction.ALLOW
    assert policy.blobs is BlobAccess.OPEN
    first, second = policy.rules
    assert first.mode is Mode.WARN
    assert first.on_error is OnError.ALLOW
    assert first.repositories == ("test/**", "prod/app")
    assert first.signatures is not None
    assert first.signatures.index_policy is IndexPolicy.SELF_OR_CHILDREN
    ci, release = first.signatures.authorities
    assert ci.signature_repository == "registry.example:5000/sigs/app"
    assert ci.rekor_public_key_pem == (key_dir / "rekor.pub").read_bytes()
    assert ci.tlog == TlogMode.REQUIRED
    assert release.key_pem == inline.encode()
    assert second.mode is Mode.AUDIT
    assert second.signatures is None
    assert second.immutable_tags is None


def test_key_path_relative_to_policy_folder(
    write_policy: WritePolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write_policy(signed_rule("- name: ci\n  key: {path: cosign.pub}"))

    policy = load_policy(path)

    assert policy.rules[0].signatures is not None
    assert (
        policy.rules[0].signatures.authorities[0].key_pem
        == (path.parent / "cosign.pub").read_bytes()
    )


def test_parse_policy_uses_base_dir(key_dir: Path) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}")

    policy = parse_policy(text, source="inline.yaml", base_dir=key_dir)

    assert policy.source == "inline.yaml"
    expected = hashlib.sha256(text.encode() + (key_dir / "cosign.pub").read_bytes())
    assert policy.revision == expected.hexdigest()


def test_parse_policy_default_source() -> None:
    policy = parse_policy("rules: []\n")

    assert policy.source == "<string>"
    assert policy.rules == ()


def test_revision_changes_on_key_rotation(write_policy: WritePolicy, key_dir: Path) -> None:
    path = write_policy(signed_rule("- name: ci\n  key: {path: cosign.pub}"))
    before = load_policy(path).revision

    (key_dir / "cosign.pub").write_bytes(public_pem())
    after = load_policy(path).revision

    assert before != after


def test_revision_counts_shared_key_file_once(write_policy: WritePolicy, key_dir: Path) -> None:
    text = signed_rule(
        """\
        - name: ci
          key: {path: cosign.pub}
        - name: ci-again
          key: {path: ./cosign.pub}
        """
    )
    policy = load_policy(write_policy(text))

    key_bytes = (key_dir / "cosign.pub").read_bytes()
    assert policy.revision == hashlib.sha256(text.encode() + key_bytes).hexdigest()


def test_inline_pem_reencoded_as_spki() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    # Extra text around the PEM block, as some tools write, is ignored.
    text = signed_rule(
        "- name: ci\n  key:\n    pem: |\n"
        + "".join(f"      {line}\n" for line in ["comment line", *pem.decode().splitlines()])
    )

    policy = parse_policy(text)

    assert policy.rules[0].signatures is not None
    assert policy.rules[0].signatures.authorities[0].key_pem == pem


def test_rsa_2048_key_accepted(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "rsa.pub").write_bytes(pem)

    policy = parse_policy(signed_rule("- name: ci\n  key: {path: rsa.pub}"), base_dir=tmp_path)

    assert policy.rules[0].signatures is not None
    assert policy.rules[0].signatures.authorities[0].key_pem == pem


def test_yaml_anchors_and_merge_keys(write_policy: WritePolicy) -> None:
    text = dedent(
        """\
        rules:
          - name: a
            repositories: [a/**]
            signatures: &ci
              authorities:
                - name: ci
                  key: {path: cosign.pub}
          - name: b
            repositories: [b/**]
            signatures: *ci
          - &defaults
            name: c
            repositories: [c/**]
            mode: warn
          - <<: *defaults
            name: d
        """
    )

    policy = load_policy(write_policy(text))

    a, b, c, d = policy.rules
    assert a.signatures == b.signatures
    assert (d.name, d.repositories, d.mode) == ("d", ("c/**",), Mode.WARN)
    assert c.name == "c"


# --- rejected policies: YAML ----------------------------------------------------------------


def test_yaml_syntax_error_names_line(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n   repositories: [x\n"

    with pytest.raises(PolicyError, match=r"document \(line 3\): invalid YAML"):
        load_text(write_policy, text)


def test_duplicate_yaml_key(write_policy: WritePolicy) -> None:
    text = "rules: []\ndefaultAction: deny\nrules: []\n"

    with pytest.raises(
        PolicyError,
        match=r"line 3\): invalid YAML: found duplicate key 'rules', first defined on line 1",
    ):
        load_text(write_policy, text)


def test_several_yaml_documents(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"invalid YAML: .*single document"):
        load_text(write_policy, "rules: []\n---\nrules: []\n")


def test_python_tag_rejected(write_policy: WritePolicy) -> None:
    text = "rules: !!python/object/apply:os.system ['true']\n"

    with pytest.raises(PolicyError, match=r"invalid YAML: could not determine a constructor"):
        load_text(write_policy, text)


def test_boolean_key_rejected(write_policy: WritePolicy) -> None:
    # YAML 1.1 reads an unquoted `on` as the boolean true.
    text = "rules: []\non: push\n"

    with pytest.raises(
        PolicyError,
        match=r"document \(line 2\): invalid YAML: expected a string key, got bool True; quote",
    ):
        load_text(write_policy, text)


def test_date_key_rejected(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"expected a string key, got date 2024-01-01"):
        load_text(write_policy, "2024-01-01: x\n")


def test_control_character_rejected() -> None:
    with pytest.raises(PolicyError, match=r"invalid YAML: unacceptable character #x0000"):
        parse_policy("rules: [{name: a, repositories: ['x\x00']}]\n")


def test_lone_surrogate_rejected() -> None:
    with pytest.raises(
        PolicyError, match=r"expected Unicode text, got a lone surrogate at offset 8"
    ):
        parse_policy("rules: [\ud800]\n")


def test_recursive_alias_rejected(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"rules\[0\] \(line 1\): expected a mapping, got a list"):
        load_text(write_policy, "rules: &loop [*loop]\n")


def test_empty_document(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"got an empty document"):
        load_text(write_policy, "# only a comment\n")


def test_top_level_list(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"document \(line 1\): expected a mapping, got a list"):
        load_text(write_policy, "- rules\n")


def test_file_too_large(write_policy: WritePolicy) -> None:
    path = write_policy("#" * (MAX_POLICY_BYTES + 1))

    with pytest.raises(PolicyError, match=rf"expected at most {MAX_POLICY_BYTES} bytes"):
        load_policy(path)


def test_text_too_large() -> None:
    with pytest.raises(PolicyError, match=rf"expected at most {MAX_POLICY_BYTES} bytes"):
        parse_policy("#" * (MAX_POLICY_BYTES + 1))


def test_file_at_size_limit_accepted(write_policy: WritePolicy) -> None:
    text = "rules: []\n"
    path = write_policy(text + "#" * (MAX_POLICY_BYTES - len(text)))

    assert load_policy(path).rules == ()


def test_invalid_utf8(write_policy: WritePolicy) -> None:
    path = write_policy("rules: []\n")
    path.write_bytes(b"rules: []\n# \xff\n")

    with pytest.raises(PolicyError, match=r"expected UTF-8 text, got an invalid byte at offset 12"):
        load_policy(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(PolicyError, match=rf"{re.escape(str(path))}: .*No such file"):
        load_policy(path)


# --- rejected policies: shape ---------------------------------------------------------------


def test_unknown_top_level_key(write_policy: WritePolicy) -> None:
    with pytest.raises(
        PolicyError,
        match=r"defaultActon \(line 1\): unknown key 'defaultActon' "
        r"\(did you mean 'defaultAction'\?\); expected one of: defaultAction, blobs, rules",
    ):
        load_text(write_policy, "defaultActon: deny\n")


def test_snake_case_key_rejected(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"default_action .*did you mean 'defaultAction'"):
        load_text(write_policy, "default_action: deny\n")


def test_unknown_rule_key(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    mdoe: warn\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.mdoe \(line 4\): unknown key 'mdoe' \(did you mean 'mode'\?\)",
    ):
        load_text(write_policy, text)


def test_unknown_authority_key(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}\n  signatureRepo: a/b")

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities\[0\]\.signatureRepo \(line 8\): unknown key "
        r"'signatureRepo' \(did you mean 'signatureRepository'\?\)",
    ):
        load_text(write_policy, text)


def test_unknown_key_inside_key_source(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {file: cosign.pub}")

    with pytest.raises(
        PolicyError,
        match=r"authorities\[0\]\.key\.file .*unknown key 'file'; expected one of: path, pem",
    ):
        load_text(write_policy, text)


def test_future_section_not_accepted_yet(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    quarantine: {}\n"

    with pytest.raises(PolicyError, match=r"rules\[0\]\.quarantine .*unknown key"):
        load_text(write_policy, text)


def test_invalid_default_action(write_policy: WritePolicy) -> None:
    with pytest.raises(
        PolicyError,
        match=r"defaultAction \(line 1\): expected 'deny' or 'allow', got string 'block'",
    ):
        load_text(write_policy, "defaultAction: block\n")


def test_invalid_blobs(write_policy: WritePolicy) -> None:
    with pytest.raises(
        PolicyError,
        match=r"blobs \(line 1\): expected 'referenced-only' or 'open', got string 'closed'",
    ):
        load_text(write_policy, "blobs: closed\n")


def test_invalid_mode(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    mode: enforced\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.mode \(line 4\): "
        r"expected 'enforce', 'warn' or 'audit', got string 'enforced'",
    ):
        load_text(write_policy, text)


def test_invalid_on_error(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    onError: ignore\n"

    with pytest.raises(PolicyError, match=r"rules\[0\]\.onError .*got string 'ignore'"):
        load_text(write_policy, text)


def test_invalid_index_policy(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}").replace(
        "      authorities:", "      indexPolicy: children\n      authorities:"
    )

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.indexPolicy .*expected 'self' or 'self-or-children'",
    ):
        load_text(write_policy, text)


def test_invalid_tlog(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}\n  tlog: always")

    with pytest.raises(
        PolicyError, match=r"authorities\[0\]\.tlog .*expected 'optional' or 'required'"
    ):
        load_text(write_policy, text)


def test_rule_name_wrong_type(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: 5\n    repositories: [x]\n"

    with pytest.raises(
        PolicyError, match=r"rules\[0\]\.name \(line 2\): expected a string, got number 5"
    ):
        load_text(write_policy, text)


def test_yaml_boolean_not_coerced(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: yes\n    repositories: [x]\n"

    with pytest.raises(
        PolicyError, match=r"rules\[0\]\.name .*expected a string, got boolean true"
    ):
        load_text(write_policy, text)


def test_repositories_not_a_list(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: test/**\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.repositories \(line 3\): expected a list, got string 'test/\*\*'",
    ):
        load_text(write_policy, text)


def test_rules_not_a_list(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"rules \(line 1\): expected a list, got a mapping"):
        load_text(write_policy, "rules: {name: a}\n")


def test_rule_not_a_mapping(write_policy: WritePolicy) -> None:
    with pytest.raises(
        PolicyError, match=r"rules\[0\] \(line 1\): expected a mapping, got string 'a'"
    ):
        load_text(write_policy, "rules: [a]\n")


def test_missing_rule_name(write_policy: WritePolicy) -> None:
    text = "rules:\n  - repositories: [x]\n"

    with pytest.raises(PolicyError, match=r"rules\[0\]\.name \(line 2\): missing required key"):
        load_text(write_policy, text)


def test_missing_repositories(write_policy: WritePolicy) -> None:
    with pytest.raises(PolicyError, match=r"rules\[0\]\.repositories .*missing required key"):
        load_text(write_policy, "rules:\n  - name: a\n")


def test_invalid_rule_name(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: 'ci signed'\n    repositories: [x]\n"

    with pytest.raises(PolicyError, match=r"rules\[0\]\.name .*expected a name .*got 'ci signed'"):
        load_text(write_policy, text)


def test_empty_repositories(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: []\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.repositories \(line 3\): expected at least 1 entry, got an empty list",
    ):
        load_text(write_policy, text)


def test_empty_authorities(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    signatures:\n      authorities: []\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities \(line 5\): expected at least 1 entry",
    ):
        load_text(write_policy, text)


def test_missing_authorities(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    signatures: {indexPolicy: self}\n"

    with pytest.raises(
        PolicyError, match=r"rules\[0\]\.signatures\.authorities .*missing required key"
    ):
        load_text(write_policy, text)


@pytest.mark.parametrize(
    ("glob", "reason"),
    [
        ("***", r"'\*\*' must be a whole path segment"),
        ("team/a**", r"'\*\*' must be a whole path segment"),
        ("team//app", r"empty path segment"),
        ("/team", r"empty path segment"),
        ("team/", r"empty path segment"),
        ("Team/app", r"unexpected character 'T'"),
        ("team/[ab]", r"unexpected character '\['"),
        ("", r"expected a non-empty glob"),
    ],
)
def test_invalid_repository_glob(write_policy: WritePolicy, glob: str, reason: str) -> None:
    text = f"rules:\n  - name: a\n    repositories: ['x', '{glob}']\n"

    with pytest.raises(
        PolicyError,
        match=rf"rules\[0\]\.repositories\[1\] \(line 3\): invalid repository glob .*{reason}",
    ):
        load_text(write_policy, text)


def test_invalid_tag_pattern(write_policy: WritePolicy) -> None:
    text = (
        "rules:\n  - name: a\n    repositories: [x]\n    immutableTags: {patterns: ['v*', 'a/b']}\n"
    )

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.immutableTags\.patterns\[1\] .*"
        r"invalid tag pattern 'a/b': unexpected character '/'",
    ):
        load_text(write_policy, text)


def test_empty_immutable_patterns(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n    immutableTags: {patterns: []}\n"

    with pytest.raises(
        PolicyError, match=r"rules\[0\]\.immutableTags\.patterns .*at least 1 entry"
    ):
        load_text(write_policy, text)


def test_invalid_signature_repository(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}\n  signatureRepository: Team/Sigs")

    with pytest.raises(
        PolicyError, match=r"authorities\[0\]\.signatureRepository .*got 'Team/Sigs'"
    ):
        load_text(write_policy, text)


def test_key_with_path_and_pem(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub, pem: x}")

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities\[0\]\.key \(line 7\): "
        r"expected exactly one of 'path' or 'pem', got both",
    ):
        load_text(write_policy, text)


def test_key_with_neither_path_nor_pem(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {}")

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities\[0\]\.key \(line 7\): "
        r"expected exactly one of 'path' or 'pem', got neither",
    ):
        load_text(write_policy, text)


def test_key_missing(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci")

    with pytest.raises(PolicyError, match=r"authorities\[0\]\.key .*missing required key"):
        load_text(write_policy, text)


# --- rejected policies: names and keys ------------------------------------------------------


def test_duplicate_rule_names(write_policy: WritePolicy) -> None:
    text = "rules:\n  - name: a\n    repositories: [x]\n  - name: a\n    repositories: [y]\n"

    with pytest.raises(
        PolicyError,
        match=r"rules\[1\]\.name \(line 4\): duplicate rule name 'a', already used by rules\[0\]",
    ):
        load_text(write_policy, text)


def test_duplicate_authority_names(write_policy: WritePolicy) -> None:
    text = signed_rule(
        """\
        - name: ci
          key: {path: cosign.pub}
        - name: ci
          key: {path: rekor.pub}
        """
    )

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities\[1\]\.name \(line 8\): duplicate authority "
        r"name 'ci' in this rule, already used by authorities\[0\]",
    ):
        load_text(write_policy, text)


def test_same_authority_name_in_two_rules(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {path: cosign.pub}")
    text += (
        text.replace("rules:\n", "").replace("ci-signed", "other").replace("test/**", "other/**")
    )

    policy = load_policy(write_policy(text))

    assert [rule.name for rule in policy.rules] == ["ci-signed", "other"]


def test_key_file_missing(write_policy: WritePolicy, key_dir: Path) -> None:
    text = signed_rule("- name: ci\n  key: {path: keys/absent.pub}")
    expected = re.escape(repr(str(key_dir / "keys/absent.pub")))

    with pytest.raises(
        PolicyError,
        match=rf"rules\[0\]\.signatures\.authorities\[0\]\.key\.path \(line 7\): cannot read key "
        rf"file {expected}: No such file or directory",
    ):
        load_text(write_policy, text)


def test_key_file_not_pem(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "junk.pub").write_text("not a key\n")
    text = signed_rule("- name: ci\n  key: {path: junk.pub}")

    with pytest.raises(
        PolicyError,
        match=r"authorities\[0\]\.key\.path \(line 7\): key file '.*junk\.pub' is not a PEM "
        r"public key: expected a '-----BEGIN PUBLIC KEY-----' block",
    ):
        load_text(write_policy, text)


def test_key_file_is_private_key(write_policy: WritePolicy, key_dir: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (key_dir / "cosign.key").write_bytes(pem)
    text = signed_rule("- name: ci\n  key: {path: cosign.key}")

    with pytest.raises(
        PolicyError, match=r"key\.path .*key file '.*cosign\.key' contains a private key"
    ):
        load_text(write_policy, text)


def test_key_file_too_large(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "huge.pub").write_bytes(b"#" * (64 * 1024 + 1))
    text = signed_rule("- name: ci\n  key: {path: huge.pub}")

    with pytest.raises(PolicyError, match=r"key\.path .*huge\.pub' is too large"):
        load_text(write_policy, text)


def test_key_path_is_directory(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "keys").mkdir()
    text = signed_rule("- name: ci\n  key: {path: keys}")

    with pytest.raises(
        PolicyError, match=r"key\.path .*cannot read key file '.*keys': Is a directory"
    ):
        load_text(write_policy, text)


def test_inline_pem_invalid(write_policy: WritePolicy) -> None:
    text = signed_rule("- name: ci\n  key: {pem: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE'}")

    with pytest.raises(
        PolicyError,
        match=r"rules\[0\]\.signatures\.authorities\[0\]\.key\.pem \(line 7\): "
        r"inline PEM is not a PEM public key",
    ):
        load_text(write_policy, text)


def test_weak_rsa_key(write_policy: WritePolicy, key_dir: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (key_dir / "weak.pub").write_bytes(pem)
    text = signed_rule("- name: ci\n  key: {path: weak.pub}")

    with pytest.raises(PolicyError, match=r"key\.path .*is an RSA key of 1024 bits; expected"):
        load_text(write_policy, text)


def test_unsupported_curve(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "k1.pub").write_bytes(public_pem(ec.SECP256K1()))
    text = signed_rule("- name: ci\n  key: {path: k1.pub}")

    with pytest.raises(
        PolicyError, match=r"key\.path .*uses curve secp256k1; expected ECDSA P-256"
    ):
        load_text(write_policy, text)


def test_bad_rekor_key(write_policy: WritePolicy, key_dir: Path) -> None:
    (key_dir / "bad-rekor.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    text = signed_rule(
        "- name: ci\n  key: {path: cosign.pub}\n  rekorPublicKey: {path: bad-rekor.pub}"
    )

    with pytest.raises(
        PolicyError,
        match=r"authorities\[0\]\.rekorPublicKey\.path \(line 8\): key file '.*bad-rekor\.pub' "
        r"is not a PEM public key",
    ):
        load_text(write_policy, text)


def test_several_problems_reported_together(write_policy: WritePolicy, key_dir: Path) -> None:
    text = dedent(
        """\
        defaultAction: maybe
        rules:
          - name: a
            repositories: ['***']
            mode: loud
          - repositories: [x]
        """
    )

    with pytest.raises(PolicyError) as caught:
        load_text(write_policy, text)

    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["defaultAction", "rules[0].repositories[0]", "rules[0].mode", "rules[1].name"]
    message = str(caught.value)
    assert message.startswith(f"invalid policy {key_dir / 'policy.yaml'}: 4 problems\n")
    for path in paths:
        assert f"  - {path} (line " in message


def test_name_and_key_problems_reported_together(write_policy: WritePolicy) -> None:
    text = signed_rule(
        """\
        - name: ci
          key: {path: absent.pub}
        - name: ci
          key: {pem: junk}
        """
    )
    text += "  - name: ci-signed\n    repositories: [x]\n"

    with pytest.raises(PolicyError) as caught:
        load_text(write_policy, text)

    assert [problem.path for problem in caught.value.problems] == [
        "rules[0].signatures.authorities[0].key.path",
        "rules[0].signatures.authorities[1].name",
        "rules[0].signatures.authorities[1].key.pem",
        "rules[1].name",
    ]


def test_policy_error_is_regward_error(write_policy: WritePolicy) -> None:
    with pytest.raises(RegwardError) as caught:
        load_text(write_policy, "blobs: 1\n")

    assert isinstance(caught.value, PolicyError)
    assert caught.value.__cause__ is not None
    assert "load the policy again" in caught.value.diagnostics()
