"""Serializers whose fields are copied once per class answer exactly as DRF's
own per-instance deep copy would, for good and bad input, in threads too."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework import serializers

from ticketing.api.serializers.checkouts import CheckoutSerializer, CheckoutStartSerializer
from ticketing.api.serializers.fields_once import FieldsCopiedOnce

INPUTS: list[Any] = [
    {"event": 1, "tickets": [{"ticket_type": 2, "quantity": 3}], "buyer_name": "Ada", "buyer_email": "ada@example.com"},
    {"event": 1, "seats": [5, 6], "buyer_name": "Ada", "buyer_email": "ada@example.com", "donation_cents": 250},
    {"event": 1, "tickets": [{"ticket_type": 2}], "buyer_name": "Ada", "buyer_email": "ada@example.com"},
    {"event": 1, "tickets": [{"quantity": "x"}, "line"], "buyer_name": "", "buyer_email": "not-an-e-mail"},
    {"event": "one", "tickets": "all", "seats": [None], "buyer_name": ["Ada"], "buyer_email": None},
    {"event": 1, "buyer_name": "Ada", "buyer_email": "ada@example.com"},
    {"event": 1, "seats": [1], "seat_hold_token": "bad token", "return_url": "https://x.example/a?b=c"},
    {"event": 1, "tickets": [{"ticket_type": 2, "quantity": 1}] * 51, "buyer_name": "A", "buyer_email": "a@b.co"},
    {},
    [],
    "text",
]


def _outcome(data: Any) -> tuple[bool, Any]:
    serializer = CheckoutStartSerializer(data=data)
    valid = serializer.is_valid()
    return valid, (dict(serializer.validated_data) if valid else serializer.errors)


@pytest.fixture
def expected(request: pytest.FixtureRequest) -> list[tuple[bool, Any]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FieldsCopiedOnce, "get_fields", serializers.Serializer.get_fields)
        return [_outcome(data) for data in INPUTS]


def test_validation_answers_as_drf_would(expected: list[tuple[bool, Any]]) -> None:
    assert [_outcome(data) for data in INPUTS] == expected
    assert [valid for valid, _ in expected].count(True) == 2, "the battery holds valid and invalid input"


def test_the_answer_renders_as_drf_would() -> None:
    body = {
        "order_code": "ABCD",
        "order_id": 7,
        "payment_url": "http://x.example/pay/t/",
        "expires_at": datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        "total_cents": 5565,
        "currency": "EUR",
        "fees": {
            "subtotal_cents": 5000,
            "platform_fee_cents": 300,
            "processor_fee_cents": 265,
            "buyer_fees_cents": 565,
            "donation_cents": 0,
            "total_cents": 5565,
        },
    }
    rendered = [CheckoutSerializer(body).data for _ in range(3)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FieldsCopiedOnce, "get_fields", serializers.Serializer.get_fields)
        assert rendered == [CheckoutSerializer(body).data] * 3


def test_instances_racing_in_threads_keep_their_own_answers(expected: list[tuple[bool, Any]]) -> None:
    failures: list[Any] = []
    start = threading.Barrier(8)

    def validate(offset: int) -> None:
        start.wait()
        for round_ in range(50):
            index = (offset + round_) % len(INPUTS)
            if _outcome(INPUTS[index]) != expected[index]:
                failures.append(index)

    threads = [threading.Thread(target=validate, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
