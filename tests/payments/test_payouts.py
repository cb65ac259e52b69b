"""Payouts at the providers: the sandbox's test destinations, its status call
and its signed payout webhooks; Stripe's payout calls and payout events."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.exceptions import ProviderRejected
from payments.models import SandboxPayout, SandboxWebhook
from payments.providers import get_provider
from payments.providers.base import EventKind, PayoutState
from payments.sandbox.gateway import sandbox_payout
from payments.sandbox.webhooks import sandbox_payouts_settle_due, signature_header
from payments.services import payout_create, payout_status_fetch
from tests.payments.factories import STRIPE_SECRET, hmac_header

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _payout_delay(settings):
    settings.SANDBOX_PAYOUT_DELAY_SECONDS = 30


def _make(destination: str, key: str = "po-key-1", amount_cents: int = 9000) -> str:
    return payout_create(
        provider="sandbox",
        amount_cents=amount_cents,
        currency="eur",
        destination=destination,
        idempotency_key=key,
        reference=f"ref-{key}",
    )


def _status(payout_id: str, *, after_seconds: float = 0) -> tuple[str, str]:
    from payments.sandbox.gateway import sandbox_payout_status

    found = sandbox_payout_status(payout_id=payout_id, now=timezone.now() + timedelta(seconds=after_seconds))
    return found.state, found.failure_code


@pytest.mark.parametrize(
    ("destination", "webhooks", "final"),
    [
        ("000123456789", ["payout.paid"], ("paid", "")),
        ("DE89 3704 0044 0532 0130 00", ["payout.paid"], ("paid", "")),  # any other destination is paid
        ("000111111116", ["payout.failed"], ("failed", "no_account")),
        ("000111111113", ["payout.failed"], ("failed", "account_closed")),
        ("000222222227", ["payout.failed"], ("failed", "insufficient_funds")),
        ("000555555559", ["payout.paid", "payout.failed"], ("failed", "account_closed")),
        ("000444444440", [], ("in_transit", "")),
    ],
)
def test_sandbox_test_destinations_decide_a_payouts_fate(destination, webhooks, final) -> None:
    payout_id = _make(destination)

    assert _status(payout_id) == ("in_transit", "")
    rows = SandboxWebhook.objects.filter(payout__payout_id=payout_id).order_by("next_attempt_at", "id")
    assert [row.event_type for row in rows] == webhooks
    for row in rows:  # due later, not now
        assert row.next_attempt_at > timezone.now() + timedelta(seconds=25)
        data = json.loads(row.body)["data"]
        assert data["payout_id"] == payout_id and data["payout_reference"] == "ref-po-key-1"
        assert (data["amount_cents"], data["currency"]) == (9000, "EUR")
    assert _status(payout_id, after_seconds=3600) == final
    if destination == "000555555559":
        assert _status(payout_id, after_seconds=31) == ("paid", "")  # paid first, returned later


def test_the_sweeper_writes_the_fate_down_when_it_is_due() -> None:
    paid, returned = _make("000123456789", "k1"), _make("000555555559", "k2")
    assert sandbox_payouts_settle_due(now=timezone.now() + timedelta(seconds=31)) == 2
    assert dict(SandboxPayout.objects.values_list("payout_id", "status")) == {paid: "paid", returned: "paid"}
    assert sandbox_payouts_settle_due(now=timezone.now() + timedelta(seconds=61)) == 1
    assert SandboxPayout.objects.get(payout_id=returned).status == "failed"


def test_a_sandbox_payout_is_idempotent_on_its_key() -> None:
    first = _make("000123456789")
    assert _make("000123456789") == first
    assert SandboxPayout.objects.count() == 1 and SandboxWebhook.objects.count() == 1
    with pytest.raises(ProviderRejected):
        _make("000123456789", amount_cents=9001)
    with pytest.raises(ProviderRejected):
        _make("000999999991", key="po-key-2")  # the refused test destination
    with pytest.raises(ProviderRejected):
        payout_status_fetch(provider="sandbox", provider_payout_id="sbx_po_unknown")


def test_the_status_call_goes_through_the_provider_interface() -> None:
    payout_id = _make("000111111113")
    found = payout_status_fetch(provider="sandbox", provider_payout_id=payout_id)
    assert (found.provider_payout_id, found.state, found.amount_cents) == (payout_id, PayoutState.IN_TRANSIT, 9000)


def test_sandbox_payout_webhooks_are_signed_and_normalized() -> None:
    payout = sandbox_payout(
        amount_cents=500, currency="EUR", destination="000111111116", idempotency_key="k", reference="payout:1"
    )
    webhook = SandboxWebhook.objects.get(payout=payout)
    raw = webhook.body.encode()

    event = get_provider("sandbox").verify_webhook(
        raw_body=raw, headers={"Sandbox-Signature": signature_header(raw_body=raw)}
    )

    assert event.kind == EventKind.PAYOUT_FAILED and event.kind.is_payout
    assert (event.provider_payout_id, event.payout_reference) == (payout.payout_id, "payout:1")
    assert (event.amount_cents, event.currency, event.failure_code) == (500, "EUR", "no_account")


# --- Stripe ----------------------------------------------------------------------------


def _stripe_payout_json(**fields: object) -> dict[str, object]:
    return {
        "id": "po_test_1",
        "object": "payout",
        "amount": 9000,
        "currency": "eur",
        "status": "in_transit",
        "failure_code": None,
        "metadata": {"payout_reference": "payout:7:EUR:2026-11-22"},
    } | fields


def test_stripe_payouts_carry_our_key_and_reference_and_report_their_status(stripe_http) -> None:
    stripe_http.respond("post", "/v1/payouts", _stripe_payout_json())
    payout_id = payout_create(
        provider="stripe",
        amount_cents=9000,
        currency="EUR",
        idempotency_key="payout:7:EUR:2026-11-22",
        reference="payout:7:EUR:2026-11-22",
    )
    [request] = stripe_http.requests
    assert payout_id == "po_test_1"
    assert request.headers["idempotency-key"] == "payout:7:EUR:2026-11-22"
    assert request.params["metadata[payout_reference]"] == "payout:7:EUR:2026-11-22"
    assert (request.params["amount"], request.params["currency"]) == ("9000", "eur")

    for stripe_status, state, code in [
        ("in_transit", PayoutState.IN_TRANSIT, ""),
        ("paid", PayoutState.PAID, ""),
        ("failed", PayoutState.FAILED, "account_closed"),
        ("canceled", PayoutState.FAILED, ""),
    ]:
        failure = code or None
        stripe_http.respond(
            "get", "/v1/payouts/po_test_1", _stripe_payout_json(status=stripe_status, failure_code=failure)
        )
        found = payout_status_fetch(provider="stripe", provider_payout_id="po_test_1")
        assert (found.state, found.failure_code, found.amount_cents, found.currency) == (state, code, 9000, "EUR")


@pytest.mark.parametrize(
    ("event_type", "kind", "failure_code"),
    [
        ("payout.paid", EventKind.PAYOUT_PAID, ""),
        ("payout.failed", EventKind.PAYOUT_FAILED, "no_account"),
        ("payout.canceled", EventKind.PAYOUT_FAILED, "canceled"),
        ("payout.updated", EventKind.IGNORED, ""),
    ],
)
def test_stripe_payout_events_are_normalized(event_type, kind, failure_code) -> None:
    obj = _stripe_payout_json(status=event_type.split(".")[1], failure_code=failure_code or None)
    if event_type == "payout.canceled":
        obj["failure_code"] = None
    raw = json.dumps(
        {"id": "evt_po_1", "object": "event", "type": event_type, "created": int(time.time()), "data": {"object": obj}}
    ).encode()

    event = get_provider("stripe").verify_webhook(
        raw_body=raw, headers={"Stripe-Signature": hmac_header(body=raw, secret=STRIPE_SECRET)}
    )

    assert event.kind == kind
    if kind != EventKind.IGNORED:
        assert (event.provider_payout_id, event.payout_reference) == ("po_test_1", "payout:7:EUR:2026-11-22")
        assert (event.amount_cents, event.currency, event.failure_code) == (9000, "EUR", failure_code)
