"""WWW-Authenticate parsing: several challenges, quoted commas, token68 and malformed values."""

from __future__ import annotations

import pytest

from regward.oci._challenge import Challenge, parse_www_authenticate
from regward.oci.errors import AuthenticationError


def test_docker_bearer_challenge() -> None:
    (challenge,) = parse_www_authenticate(
        [
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/nginx:pull,push"'
        ]
    )
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull,push",
    }


def test_several_challenges_in_one_value() -> None:
    challenges = parse_www_authenticate(
        ['Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"']
    )
    assert [c.scheme for c in challenges] == ["newauth", "basic"]
    assert dict(challenges[0].params) == {
        "realm": "apps",
        "type": "1",
        "title": 'Login to "apps"',
    }
    assert dict(challenges[1].params) == {"realm": "simple"}


def test_several_header_values() -> None:
    challenges = parse_www_authenticate(['Basic realm="a"', 'Bearer realm="b",error="x"'])
    assert [(c.scheme, c.params["realm"]) for c in challenges] == [("basic", "a"), ("bearer", "b")]


def test_scheme_and_names_case_insensitive() -> None:
    (challenge,) = parse_www_authenticate(['BEARER Realm="r", SERVICE=svc'])
    assert challenge == Challenge("bearer", {"realm": "r", "service": "svc"})


def test_bare_scheme_then_challenge() -> None:
    challenges = parse_www_authenticate(['Basic, Bearer realm="r"'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert dict(challenges[0].params) == {}


def test_token68() -> None:
    challenges = parse_www_authenticate(['Negotiate abc+/==, Basic realm="r"'])
    assert challenges[0] == Challenge("negotiate", {}, "abc+/==")
    assert challenges[1].params["realm"] == "r"


def test_spaces_around_equals_and_commas() -> None:
    (challenge,) = parse_www_authenticate(['Bearer  realm = "r" ,  scope = "a b" ,'])
    assert dict(challenge.params) == {"realm": "r", "scope": "a b"}


def test_lone_word_is_token68() -> None:
    assert parse_www_authenticate(["Bearer realm"]) == [Challenge("bearer", {}, "realm")]


def test_empty_values() -> None:
    assert parse_www_authenticate(["", " , "]) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('Bearer realm="unterminated', "unterminated quoted string"),
        ('Bearer realm="a", realm="b"', "parameter 'realm' repeated"),
        ('Bearer realm="a" junk', "unexpected 'j'"),
        ('Bearer realm "x"', "expected '=' after parameter 'realm'"),
        ('"quoted" realm="x"', "expected an authentication scheme"),
        ("Bearer =x", "expected a parameter name"),
    ],
)
def test_malformed(value: str, problem: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed WWW-Authenticate header") as caught:
        parse_www_authenticate([value])
    assert problem in str(caught.value)
