"""Public checkouts: start one, read and cancel the order by its code; the
staff cancel; the errors of the checkout domain in the API's error format."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.api.conftest import World, client_for, token_for
from tests.workflows.checkout.conftest import pay
from ticketing.exceptions import Busy
from ticketing.models import (
    EventStatus,
    IdempotencyRecord,
    Order,
    OrderStatus,
    TicketType,
    WebhookDelivery,
    WebhookSubscription,
)
from workflows.checkout.start import CheckoutStarted
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/public/checkouts/"
# The SQL statements of one GA checkout start through the API (no
# Idempotency-Key, no webhook subscription), as pytest-django counts them,
# BEGIN/COMMIT included: start_checkout's own (tests/bench/test_query_counts.py
# pins the same call) and nothing of ours: the cart's read tells whether
# anyone subscribed, so order.created needs no query when nobody did. (Was
# 85 until the start became one transaction; then 18, 15; then 14, some of
# them travelling together: see tests/bench/test_query_counts.py.)
# Raise it only knowingly: it is the hot path of a rush.
CHECKOUT_START_MAX_QUERIES = 14


@pytest.fixture(autouse=True)
def _checkout_settings(settings: Any) -> None:
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "https://tickets.example"


def _body(w: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": w.event.pk,
        "tickets": [{"ticket_type": w.ticket_type.pk, "quantity": 2}],
        "buyer_name": "Ada Lovelace",
        "buyer_email": "Ada@Example.com",
    }
    body.update(overrides)
    return body


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code
    return body


def _held(ticket_type: TicketType) -> int:
    ticket_type.refresh_from_db()
    return ticket_type.held


# --- start ------------------------------------------------------------------------------


def test_anonymous_checkout_returns_the_payment_page_and_the_fee_breakdown(world_a: World) -> None:
    response = APIClient().post(URL, _body(world_a, donation_cents=300), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"order_code", "order_id", "payment_url", "expires_at", "total_cents", "currency", "fees"}
    assert body["payment_url"].startswith("https://tickets.example/pay/sandbox/")
    assert body["expires_at"] and body["currency"] == "EUR"
    fees = body["fees"]
    assert fees["total_cents"] == body["total_cents"]
    assert fees["subtotal_cents"] == 2 * world_a.ticket_type.price_cents and fees["donation_cents"] == 300
    assert fees["subtotal_cents"] + fees["buyer_fees_cents"] + fees["donation_cents"] == fees["total_cents"]
    order = Order.objects.get(pk=body["order_id"])
    assert order.code == body["order_code"] and order.status == OrderStatus.PENDING
    assert order.buyer_email == "ada@example.com" and order.total_cents == body["total_cents"]
    assert _held(world_a.ticket_type) == 2


def test_a_token_caller_may_start_a_checkout_too(world_a: World) -> None:
    client = client_for(token_for(world_a.organization, "scanner"))
    assert client.post(URL, _body(world_a), format="json").status_code == 201


def test_seated_checkout_holds_the_chosen_seats(world_a: World) -> None:
    seats = world_a.hall.seats("A", [3, 4])
    response = APIClient().post(URL, _body(world_a, tickets=[], seats=seats), format="json")
    assert response.status_code == 201, response.json()
    order = Order.objects.get(code=response.json()["order_code"])
    assert sorted(order.lines.values_list("seat_id", flat=True)) == sorted(seats)


def test_return_url_is_where_the_payment_page_sends_the_buyer_back(world_a: World) -> None:
    body = _body(world_a, return_url="https://shop.example/thanks")
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 201
    from payments.models import PaymentSession

    session = PaymentSession.objects.get(order_id=response.json()["order_id"])
    assert session.success_url == "https://shop.example/thanks?status=paid"
    bad = APIClient().post(URL, _body(world_a, return_url="https://shop.example/?next=evil"), format="json")
    assert "return_url" in _error(bad, 400, "invalid")["detail"]


def test_checkout_start_query_count_is_pinned(world_a: World, django_assert_max_num_queries: Any) -> None:
    client = APIClient()
    client.post(URL, _body(world_a), format="json")  # warm caches (content types, fee rules)
    with django_assert_max_num_queries(CHECKOUT_START_MAX_QUERIES) as captured:
        response = client.post(URL, _body(world_a), format="json")
    assert response.status_code == 201
    print(f"API checkout start: {len(captured)} statements")


# --- the checkout domain's errors -----------------------------------------------------


def test_sold_out_is_409_and_holds_nothing(world_a: World) -> None:
    TicketType.objects.filter(pk=world_a.ticket_type.pk).update(capacity=3)
    body = _body(world_a, tickets=[{"ticket_type": world_a.ticket_type.pk, "quantity": 2}])
    assert APIClient().post(URL, body, format="json").status_code == 201
    _error(APIClient().post(URL, body, format="json"), 409, "sold_out")
    assert _held(world_a.ticket_type) == 2


def test_a_held_seat_is_409_seat_unavailable(world_a: World) -> None:
    taken = world_a.hall.seats("B", [1])  # in the world's seat hold
    body = _error(
        APIClient().post(URL, _body(world_a, tickets=[], seats=taken), format="json"), 409, "seat_unavailable"
    )
    assert body["detail"]


def test_quantity_below_one_is_invalid_quantity(world_a: World) -> None:
    body = _body(world_a, tickets=[{"ticket_type": world_a.ticket_type.pk, "quantity": 0}])
    _error(APIClient().post(URL, body, format="json"), 400, "invalid_quantity")


def test_an_event_not_on_sale_is_409(world_a: World) -> None:
    ticket_type = TicketType.objects.filter(event=world_a.draft_event).first()
    body = _body(world_a, event=world_a.draft_event.pk, tickets=[{"ticket_type": ticket_type.pk, "quantity": 1}])
    _error(APIClient().post(URL, body, format="json"), 409, "not_on_sale")
    assert world_a.draft_event.status == EventStatus.DRAFT


def test_validation_errors_name_the_field_and_start_nothing(world_a: World) -> None:
    runs = WorkflowRun.objects.count()
    detail = _error(
        APIClient().post(URL, _body(world_a, buyer_email="nope", donation_cents=-1), format="json"), 400, "invalid"
    )["detail"]
    assert {"buyer_email", "donation_cents"} <= set(detail)
    assert (
        "tickets" in _error(APIClient().post(URL, _body(world_a, tickets=[]), format="json"), 400, "invalid")["detail"]
    )
    _error(APIClient().post(URL, _body(world_a, event=10**17), format="json"), 404, "not_found")
    _error(APIClient().post(URL, {"event": "x", "tickets": "y"}, format="json"), 400, "invalid")
    assert WorkflowRun.objects.count() == runs


def test_busy_is_429_with_retry_after(world_a: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(**kwargs: Any) -> CheckoutStarted:
        raise Busy()

    monkeypatch.setattr("ticketing.api.views.checkouts.start_checkout", busy)
    response = APIClient().post(URL, _body(world_a), format="json", HTTP_IDEMPOTENCY_KEY="busy-1")
    _error(response, 429, "busy")
    assert int(response["Retry-After"]) >= 1
    # Not stored: the retry runs again.
    monkeypatch.undo()
    again = APIClient().post(URL, _body(world_a), format="json", HTTP_IDEMPOTENCY_KEY="busy-1")
    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")


def test_the_public_endpoints_are_throttled_per_ip(world_a: World, settings: Any) -> None:
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"anon": "2/min", "client": "100/min"}
    with override_settings(REST_FRAMEWORK=rest):
        one, two = APIClient(), APIClient(REMOTE_ADDR="10.0.0.2")
        assert one.post(URL, _body(world_a), format="json").status_code == 201
        assert one.get(f"/api/v1/public/orders/{world_a.order.code}/").status_code == 200
        response = one.post(URL, _body(world_a), format="json")
        _error(response, 429, "throttled")
        assert response["Retry-After"]
        assert two.post(URL, _body(world_a), format="json").status_code == 201


# --- Idempotency-Key ----------------------------------------------------------------------


def test_anonymous_idempotency_key_replays_the_same_checkout(world_a: World) -> None:
    client = APIClient()
    first = client.post(URL, _body(world_a), format="json", HTTP_IDEMPOTENCY_KEY="cart-1")
    second = client.post(URL, _body(world_a), format="json", HTTP_IDEMPOTENCY_KEY="cart-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(event=world_a.event, status=OrderStatus.PENDING).count() == 2  # the world's + one
    assert _held(world_a.ticket_type) == 2

    other = client.post(URL, _body(world_a, buyer_name="Someone Else"), format="json", HTTP_IDEMPOTENCY_KEY="cart-1")
    _error(other, 422, "idempotency_key_reused")
    # Another IP owns its keys separately.
    elsewhere = APIClient(REMOTE_ADDR="10.9.9.9").post(
        URL, _body(world_a), format="json", HTTP_IDEMPOTENCY_KEY="cart-1"
    )
    assert elsewhere.status_code == 201 and elsewhere.json()["order_code"] != first.json()["order_code"]


# --- the buyer's order --------------------------------------------------------------------


def test_the_order_code_shows_the_order_without_personal_data(world_a: World) -> None:
    started = APIClient().post(URL, _body(world_a), format="json").json()
    body = APIClient().get(f"/api/v1/public/orders/{started['order_code']}/").json()
    assert body["code"] == started["order_code"] and body["status"] == "pending"
    assert body["total_cents"] == started["total_cents"] and body["quantity"] == 2 and body["tickets_issued"] == 0
    assert body["expires_at"]
    assert "buyer_email" not in body and "buyer_name" not in body and "id" not in body

    paid = APIClient().get(f"/api/v1/public/orders/{world_a.order.code}/").json()
    assert paid["status"] == "paid" and paid["tickets_issued"] == 2


@pytest.mark.parametrize("code", ["nope", "x" * 33, "%20"])
def test_an_unknown_code_is_404(world_a: World, code: str) -> None:
    _error(APIClient().get(f"/api/v1/public/orders/{code}/"), 404, "not_found")
    _error(APIClient().post(f"/api/v1/public/orders/{code}/cancel/", {}, format="json"), 404, "not_found")


def test_the_buyer_cancels_a_pending_order(world_a: World) -> None:
    started = APIClient().post(URL, _body(world_a), format="json").json()
    url = f"/api/v1/public/orders/{started['order_code']}/cancel/"

    response = APIClient().post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="cancel-1")

    assert response.status_code == 202, response.json()
    # Celery runs inline in tests: the checkout has already ended.
    assert response.json()["status"] == "cancelled"
    assert Order.objects.get(code=started["order_code"]).status == OrderStatus.CANCELLED
    assert _held(world_a.ticket_type) == 0
    replay = APIClient().post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert replay["Idempotent-Replayed"] == "true"
    assert APIClient().post(url, {}, format="json").status_code == 202  # again: nothing to do


def test_a_paid_order_cannot_be_cancelled(world_a: World) -> None:
    url = f"/api/v1/public/orders/{world_a.order.code}/cancel/"
    _error(APIClient().post(url, {}, format="json"), 409, "invalid_state")
    assert Order.objects.get(pk=world_a.order.pk).status == OrderStatus.PAID


def test_staff_cancel_a_pending_order(world_a: World) -> None:
    started = APIClient().post(URL, _body(world_a), format="json").json()
    client = client_for(token_for(world_a.organization, "box_office"))

    response = client.post(f"/api/v1/orders/{started['order_id']}/cancel/", {}, format="json")

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "cancelled" and response.json()["buyer_email"] == "ada@example.com"
    _error(client.post(f"/api/v1/orders/{world_a.order.pk}/cancel/", {}, format="json"), 409, "invalid_state")


# --- outbound webhooks ----------------------------------------------------------------------


def test_checkout_events_are_published_to_subscribers(world_a: World, receiver: Any) -> None:
    from tests.api.conftest import Receiver
    from ticketing.services.outbound_webhooks import webhook_signature_verify

    assert isinstance(receiver, Receiver)
    subscription = WebhookSubscription.objects.create(
        organization=world_a.organization,
        url=receiver.url,
        event_types=["order.created", "order.paid", "ticket.issued", "order.cancelled"],
    )
    started = APIClient().post(URL, _body(world_a), format="json").json()
    pay(CheckoutStarted(started["order_code"], started["order_id"], started["payment_url"], None, 0, "EUR", 0))
    assert Order.objects.get(pk=started["order_id"]).status == OrderStatus.PAID

    import json

    events = [(headers["Ticketing-Event-Type"], json.loads(body)) for headers, body in receiver.received]
    assert [kind for kind, _ in events] == ["order.created", "order.paid", "ticket.issued", "ticket.issued"]
    assert all(e["data"]["order"]["code"] == started["order_code"] for _, e in events[:2])
    assert events[1][1]["data"]["order"]["status"] == "paid"
    assert {e["data"]["ticket"]["order_code"] for _, e in events[2:]} == {started["order_code"]}
    for headers, body in receiver.received:
        assert webhook_signature_verify(secret=subscription.secret, header=headers["Ticketing-Signature"], body=body)

    cancelled = APIClient().post(URL, _body(world_a), format="json").json()
    APIClient().post(f"/api/v1/public/orders/{cancelled['order_code']}/cancel/", {}, format="json")
    last = json.loads(receiver.received[-1][1])
    assert last["type"] == "order.cancelled" and last["data"]["order"]["status"] == "cancelled"
    assert not WebhookDelivery.objects.exclude(status="succeeded").exists()

    # Sold out while reserving: the order and its holds commit together, so
    # no order is left behind, and integrators hear of nothing.
    ticket_type = world_a.ticket_type
    ticket_type.refresh_from_db()
    TicketType.objects.filter(pk=ticket_type.pk).update(capacity=ticket_type.sold + ticket_type.held + 1)
    heard = len(receiver.received)
    _error(APIClient().post(URL, _body(world_a), format="json"), 409, "sold_out")
    assert (
        Order.objects.filter(event=world_a.event, status=OrderStatus.CANCELLED).count() == 1
    )  # the one cancelled above
    assert len(receiver.received) == heard


def test_other_organizations_subscribers_hear_nothing(world_a: World, world_b: World, receiver: Any) -> None:
    WebhookSubscription.objects.create(
        organization=world_b.organization,
        url=receiver.url,
        event_types=["order.created", "order.paid", "ticket.issued"],
    )
    started = APIClient().post(URL, _body(world_a), format="json").json()
    pay(CheckoutStarted(started["order_code"], started["order_id"], started["payment_url"], None, 0, "EUR", 0))
    assert receiver.received == []


def test_a_retry_whose_idempotency_record_was_lost_gets_the_same_checkout(world_a: World) -> None:
    """The fault drills: during a database outage the idempotency record of a
    checkout could not be kept, while the checkout itself went on. The retry
    with the same key and body must find that checkout, not start a second."""
    headers = {"HTTP_IDEMPOTENCY_KEY": "retry-me-1"}
    orders_before = Order.objects.count()
    world_a.ticket_type.refresh_from_db()
    held_before = world_a.ticket_type.held
    first = APIClient().post(URL, _body(world_a), format="json", **headers)
    assert first.status_code == 201, first.content
    IdempotencyRecord.objects.all().delete()  # lost with the outage

    again = APIClient().post(URL, _body(world_a), format="json", **headers)

    assert again.status_code == 201, again.content
    assert again.json()["order_code"] == first.json()["order_code"]
    assert again.json()["payment_url"] == first.json()["payment_url"]
    assert Order.objects.count() == orders_before + 1
    world_a.ticket_type.refresh_from_db()
    assert world_a.ticket_type.held == held_before + 2

    # Another body under the same key (once its record is gone) is another checkout.
    IdempotencyRecord.objects.all().delete()
    other = APIClient().post(URL, _body(world_a, buyer_name="Grace Hopper"), format="json", **headers)
    assert other.status_code == 201 and other.json()["order_code"] != first.json()["order_code"]
