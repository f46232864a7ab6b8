"""The Gatekeeper external data provider protocol."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from regward.admission.config import parse_admission_settings
from regward.admission.gatekeeper import MAX_PROVIDER_BODY_BYTES, MAX_PROVIDER_KEYS, provider
from tests.unit.admission.reviews import DIGEST_A, DIGEST_B, FakeDecider

SIGNED = "registry.example.com/team/app:v1"
UNSIGNED = "registry.example.com/team/unsigned:v1"


def request(keys: list[Any]) -> bytes:
    return json.dumps(
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": keys},
        }
    ).encode()


def decider() -> FakeDecider:
    fake = FakeDecider()
    fake.allow(SIGNED, DIGEST_A)
    fake.deny(UNSIGNED, "no signature verified by authority 'ci'", DIGEST_B)
    return fake


async def answer(body: bytes, fake: FakeDecider, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, payload = await provider(body, fake, **kwargs)
    document = json.loads(payload)
    assert document["apiVersion"] == "externaldata.gatekeeper.sh/v1beta1"
    assert document["kind"] == "ProviderResponse"
    return status, document["response"]


async def test_items_for_list_of_images() -> None:
    status, response = await answer(
        request([SIGNED, UNSIGNED, "Not A Reference", SIGNED]), decider()
    )
    assert status == 200
    assert response["idempotent"] is True
    assert "systemError" not in response
    items = response["items"]
    assert [item["key"] for item in items] == [SIGNED, UNSIGNED, "Not A Reference"]
    assert items[0] == {
        "key": SIGNED,
        "value": {
            "allowed": True,
            "warn": False,
            "digest": DIGEST_A,
            "reason": "",
            "timedOut": False,
        },
    }
    assert items[1]["value"]["allowed"] is False
    assert items[1]["value"]["digest"] == DIGEST_B
    assert items[1]["value"]["reason"] == "no signature verified by authority 'ci'"
    assert "error" not in items[1]
    assert items[2]["error"].startswith("invalid image reference 'Not A Reference'")
    assert "value" not in items[2]


async def test_empty_keys() -> None:
    status, response = await answer(request([]), decider())
    assert status == 200
    assert response["items"] == []


async def test_allowed_registries_apply() -> None:
    settings = parse_admission_settings({"allowedRegistries": ["ghcr.io"]})
    fake = decider()
    _, response = await answer(request([SIGNED]), fake, settings=settings)
    value = response["items"][0]["value"]
    assert value["allowed"] is False
    assert "is not in admission.allowedRegistries (ghcr.io)" in value["reason"]
    assert fake.calls == []


async def test_budget_marks_timed_out_keys() -> None:
    fake = decider()
    fake.delays[SIGNED] = 5.0
    started = time.monotonic()
    _, response = await answer(request([SIGNED, UNSIGNED]), fake, budget=0.2)
    assert time.monotonic() - started < 1.0
    value = response["items"][0]["value"]
    assert value["timedOut"] is True
    assert value["allowed"] is False
    assert "timed out after 0.2 s" in value["reason"]
    assert response["items"][1]["value"]["timedOut"] is False


async def test_too_many_keys_is_system_error() -> None:
    keys = [f"registry.example.com/app{index}:v1" for index in range(MAX_PROVIDER_KEYS + 1)]
    fake = decider()
    status, response = await answer(request(keys), fake)
    assert status == 400
    assert response["systemError"] == (
        f"ProviderRequest has {MAX_PROVIDER_KEYS + 1} distinct keys, more than {MAX_PROVIDER_KEYS}"
    )
    assert response["items"] == []
    assert fake.calls == []


async def test_many_keys_within_limit_all_answered() -> None:
    keys = [f"registry.example.com/app{index}:v1" for index in range(MAX_PROVIDER_KEYS)]
    _, response = await answer(request(keys), decider())
    assert len(response["items"]) == MAX_PROVIDER_KEYS


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "invalid ProviderRequest: body: Invalid JSON"),
        (
            json.dumps(
                {
                    "apiVersion": "externaldata.gatekeeper.sh/v1alpha1",
                    "kind": "ProviderRequest",
                    "request": {"keys": []},
                }
            ).encode(),
            "invalid ProviderRequest: apiVersion: Input should be "
            "'externaldata.gatekeeper.sh/v1beta1'",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                    "kind": "ProviderResponse",
                    "request": {},
                }
            ).encode(),
            "invalid ProviderRequest: kind: Input should be 'ProviderRequest'",
        ),
        (
            request([1, 2]),
            "invalid ProviderRequest: request.keys.0: Input should be a valid string",
        ),
        (b" " * (MAX_PROVIDER_BODY_BYTES + 1), f"more than {MAX_PROVIDER_BODY_BYTES}"),
    ],
)
async def test_malformed_request_is_system_error(body: bytes, message: str) -> None:
    status, response = await answer(body, decider())
    assert status == 400
    assert message in response["systemError"]
