"""Buyers' seat holds through the public API, and the checkout adopting them.

POST /api/v1/public/events/<id>/seat-holds/ holds chosen seats or the best
available ones (no credentials, throttled per IP, Idempotency-Key); the token
it answers is the buyer's only credential: the public checkout adopts the hold
with it (no second hold), and POST /api/v1/public/seat-holds/<token>/release/
gives it back. Races run on real PostgreSQL; the inventory invariants are
checked after every test here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.services.holds import MAX_SEATS_PER_HOLD, seat_hold_create
from tests.api.conftest import World
from tests.seating.factories import sell
from tests.seating.test_races import assert_holds_disjoint_and_owned, race
from tests.workflows.checkout.conftest import pay
from ticketing.models import Event, EventStatus, Order, OrderStatus, TicketType
from workflows.checkout.start import CheckoutStarted
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("check_inventory")]

CHECKOUT = "/api/v1/public/checkouts/"


@pytest.fixture(autouse=True)
def _checkout_settings(settings: Any) -> None:
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "https://tickets.example"


def holds_url(event_id: int) -> str:
    return f"/api/v1/public/events/{event_id}/seat-holds/"


def release_url(token: str) -> str:
    return f"/api/v1/public/seat-holds/{token}/release/"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code, body
    return body


def _best(w: World, quantity: int = 2) -> dict[str, Any]:
    return {"category": w.hall.categories["std"].pk, "quantity": quantity}


def _checkout_body(w: World, seats: list[int], token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": w.event.pk,
        "seats": seats,
        "buyer_name": "Ada Lovelace",
        "buyer_email": "ada@example.com",
    }
    if token is not None:
        body["seat_hold_token"] = token
    return body


def _statuses(seat_ids: list[int]) -> set[str]:
    return set(Seat.objects.filter(pk__in=seat_ids).values_list("status", flat=True))


def _world_state(w: World) -> dict[str, Any]:
    """What a refused request must leave as it was."""
    return {
        "holds": sorted(SeatHold.objects.filter(event=w.event).values_list("id", "status", "reference")),
        "seats": sorted(Seat.objects.filter(event=w.event).values_list("id", "status", "hold_id")),
        "orders": Order.objects.filter(event=w.event).count(),
        "runs": WorkflowRun.objects.count(),
    }


# --- holding ---------------------------------------------------------------------------


def test_hold_the_chosen_seats(world_a: World) -> None:
    seats = world_a.hall.seats("A", [3, 4])
    response = APIClient().post(holds_url(world_a.event.pk), {"seats": seats}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"token", "event", "status", "seats", "expires_at", "seconds_left"}
    assert body["event"] == world_a.event.pk and body["status"] == "active"
    assert [s["id"] for s in body["seats"]] == sorted(seats)
    first = body["seats"][0]
    assert first["row"] == "A" and first["section"] == "Main" and first["number"] == 3 and first["label"]
    assert first["category"] == world_a.hall.categories["std"].pk
    assert first["ticket_type"] == world_a.hall.categories["std"].ticket_type_id and first["price_cents"] > 0
    assert 14 * 60 < body["seconds_left"] <= 15 * 60
    hold = SeatHold.objects.get(token=body["token"])
    assert hold.reference == "" and sorted(hold.seat_ids) == sorted(seats)
    assert _statuses(seats) == {SeatStatus.HELD}


def test_hold_the_best_available(world_a: World) -> None:
    response = APIClient().post(holds_url(world_a.event.pk), _best(world_a, 3), format="json")

    assert response.status_code == 201, response.json()
    seats = response.json()["seats"]
    assert len(seats) == 3 and len({s["row"] for s in seats}) == 1
    numbers = sorted(s["number"] for s in seats)
    assert numbers == list(range(numbers[0], numbers[0] + 3))  # adjacent
    assert _statuses([s["id"] for s in seats]) == {SeatStatus.HELD}


def test_a_taken_seat_is_409_naming_it_and_holds_nothing(world_a: World) -> None:
    taken = world_a.hold.seat_ids[0]  # the world's live hold
    before = _world_state(world_a)
    seats = [world_a.hall.seat("B", 3), taken]
    body = _error(
        APIClient().post(holds_url(world_a.event.pk), {"seats": seats}, format="json"), 409, "seat_unavailable"
    )
    assert body["detail"]["seat_ids"] == [taken]
    assert _world_state(world_a) == before


def test_nothing_free_is_409_no_seats_available(world_a: World) -> None:
    free = list(Seat.objects.filter(event=world_a.event, status=SeatStatus.FREE).values_list("pk", flat=True))
    sell(world_a.event, free)
    before = _world_state(world_a)
    body = _error(
        APIClient().post(holds_url(world_a.event.pk), _best(world_a), format="json"), 409, "no_seats_available"
    )
    assert body["detail"]["free"] == 0 and body["detail"].get("reason") != "lost_race"
    assert _world_state(world_a) == before


def test_the_checkouts_rules_apply_before_holding(world_a: World) -> None:
    seated = TicketType.objects.get(pk=world_a.hall.categories["std"].ticket_type_id)
    before = _world_state(world_a)
    client = APIClient()

    TicketType.objects.filter(pk=seated.pk).update(max_per_order=2)
    _error(client.post(holds_url(world_a.event.pk), _best(world_a, 3), format="json"), 400, "invalid_quantity")
    three = world_a.hall.seats("A", [1, 2, 3])
    _error(client.post(holds_url(world_a.event.pk), {"seats": three}, format="json"), 400, "invalid_quantity")

    TicketType.objects.filter(pk=seated.pk).update(sales_end=timezone.now() - timedelta(minutes=1))
    _error(client.post(holds_url(world_a.event.pk), _best(world_a), format="json"), 409, "sales_ended")
    _error(client.post(holds_url(world_a.event.pk), {"seats": three[:2]}, format="json"), 409, "sales_ended")
    TicketType.objects.filter(pk=seated.pk).update(sales_end=None)

    Seat.objects.filter(pk=three[0]).update(status=SeatStatus.BLOCKED)
    _error(client.post(holds_url(world_a.event.pk), {"seats": three[:2]}, format="json"), 409, "seat_blocked")
    Seat.objects.filter(pk=three[0]).update(status=SeatStatus.FREE)

    Event.objects.filter(pk=world_a.event.pk).update(status=EventStatus.SALES_CLOSED)
    _error(client.post(holds_url(world_a.event.pk), _best(world_a), format="json"), 409, "not_on_sale")
    Event.objects.filter(pk=world_a.event.pk).update(status=EventStatus.ON_SALE)
    assert _world_state(world_a) == before


def test_an_idempotency_key_replays_the_same_hold(world_a: World) -> None:
    client = APIClient()
    first = client.post(holds_url(world_a.event.pk), _best(world_a), format="json", HTTP_IDEMPOTENCY_KEY="hold-1")
    second = client.post(holds_url(world_a.event.pk), _best(world_a), format="json", HTTP_IDEMPOTENCY_KEY="hold-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert SeatHold.objects.filter(event=world_a.event).exclude(pk=world_a.hold.pk).count() == 1
    other = client.post(holds_url(world_a.event.pk), _best(world_a, 3), format="json", HTTP_IDEMPOTENCY_KEY="hold-1")
    _error(other, 422, "idempotency_key_reused")


def test_holding_is_throttled_per_ip(world_a: World, settings: Any) -> None:
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"anon": "2/min", "client": "100/min"}
    with override_settings(REST_FRAMEWORK=rest):
        one, two = APIClient(), APIClient(REMOTE_ADDR="10.0.0.2")
        assert one.post(holds_url(world_a.event.pk), _best(world_a), format="json").status_code == 201
        assert one.post(holds_url(world_a.event.pk), _best(world_a), format="json").status_code == 201
        response = one.post(holds_url(world_a.event.pk), _best(world_a), format="json")
        _error(response, 429, "throttled")
        assert response["Retry-After"]
        assert two.post(holds_url(world_a.event.pk), _best(world_a), format="json").status_code == 201
        _error(one.post(release_url("x" * 24), {}, format="json"), 429, "throttled")


# --- hostile input: a 4xx, never a 5xx, and nothing held --------------------------------


HOSTILE_BODIES: list[tuple[str, Any]] = [
    ("empty", {}),
    ("both ways at once", {"seats": [1], "category": 1, "quantity": 2}),
    ("category alone", {"category": 1}),
    ("quantity alone", {"quantity": 2}),
    ("negative quantity", {"category": 1, "quantity": -2}),
    ("zero quantity", {"category": 1, "quantity": 0}),
    ("huge quantity", {"category": 1, "quantity": 10**12}),
    ("quantity as text", {"category": 1, "quantity": "two"}),
    ("quantity as a float", {"category": 1, "quantity": 2.5}),
    ("negative category", {"category": -1, "quantity": 2}),
    ("huge category", {"category": 2**70, "quantity": 2}),
    ("empty list", {"seats": []}),
    ("huge list", {"seats": list(range(1, 10_001))}),
    ("seats as a string", {"seats": "1,2"}),
    ("seats as an object", {"seats": {"1": 2}}),
    ("null seats", {"seats": None}),
    ("negative ids", {"seats": [-1, -2]}),
    ("huge ids", {"seats": [2**64]}),
    ("nested lists", {"seats": [[1, 2]]}),
    ("a list body", [1, 2]),
    ("a string body", "seats"),
]


@pytest.mark.parametrize("body", [b for _, b in HOSTILE_BODIES], ids=[name for name, _ in HOSTILE_BODIES])
def test_hostile_hold_requests_are_400_and_hold_nothing(world_a: World, body: Any) -> None:
    before = _world_state(world_a)
    response = APIClient().post(holds_url(world_a.event.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"code", "message", "detail"}
    assert _world_state(world_a) == before


def test_seats_and_categories_of_other_events_are_refused(world_a: World, world_b: World) -> None:
    before = _world_state(world_a), _world_state(world_b)
    client = APIClient()
    foreign = world_b.hall.seats("A", [1, 2])
    body = _error(client.post(holds_url(world_a.event.pk), {"seats": foreign}, format="json"), 400, "seat_wrong_event")
    assert body["detail"]["seat_ids"] == foreign
    mixed = [world_a.hall.seat("A", 1), foreign[0]]
    _error(client.post(holds_url(world_a.event.pk), {"seats": mixed}, format="json"), 400, "seat_wrong_event")
    _error(client.post(holds_url(world_a.event.pk), _best(world_b), format="json"), 400, "unknown_category")
    _error(client.post(holds_url(world_a.event.pk), {"seats": [10**15]}, format="json"), 400, "unknown_seat")
    too_many = list(range(1, MAX_SEATS_PER_HOLD + 2))
    _error(client.post(holds_url(world_a.event.pk), {"seats": too_many}, format="json"), 400, "invalid_seat_selection")
    duplicates = [world_a.hall.seat("A", 1)] * 2
    _error(
        client.post(holds_url(world_a.event.pk), {"seats": duplicates}, format="json"), 400, "invalid_seat_selection"
    )
    # Unknown and unpublished events are not found.
    _error(client.post(holds_url(10**17), _best(world_a), format="json"), 404, "not_found")
    _error(client.post(holds_url(world_a.draft_event.pk), _best(world_a), format="json"), 404, "not_found")
    assert (_world_state(world_a), _world_state(world_b)) == before


# --- release -----------------------------------------------------------------------------


def test_release_gives_the_seats_back_and_is_safe_to_repeat(world_a: World) -> None:
    client = APIClient()
    held = client.post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    seat_ids = [s["id"] for s in held["seats"]]

    released = client.post(release_url(held["token"]), {}, format="json")
    assert released.status_code == 200, released.json()
    assert released.json()["status"] == "released" and released.json()["seconds_left"] == 0
    assert [s["id"] for s in released.json()["seats"]] == seat_ids
    assert _statuses(seat_ids) == {SeatStatus.FREE}

    again = client.post(release_url(held["token"]), {}, format="json")
    assert again.status_code == 200 and again.json()["status"] == "released"
    # The seats can be held again, by anyone.
    assert APIClient().post(holds_url(world_a.event.pk), {"seats": seat_ids}, format="json").status_code == 201


def test_a_lapsed_hold_releases_too(world_a: World) -> None:
    held = APIClient().post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    SeatHold.objects.filter(token=held["token"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = APIClient().post(release_url(held["token"]), {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "released"
    assert _statuses([s["id"] for s in held["seats"]]) == {SeatStatus.FREE}


@pytest.mark.parametrize("token", ["abcdefghijklmnopqrstuvwx", "x", "%00", "a.b", "a" * 65, "..", "%2e%2e", "é"])
def test_an_unknown_or_malformed_token_is_404_and_releases_nothing(world_a: World, token: str) -> None:
    before = _world_state(world_a)
    response = APIClient().post(release_url(token), {}, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] in {"seat_hold_not_found", "not_found"}
    assert _world_state(world_a) == before


def test_release_never_reaches_holds_by_id_nor_orders_holds(world_a: World) -> None:
    """The token is the credential: a hold's id is not, and a hold that an
    order owns (made by staff for one, or adopted by a checkout) is not the
    token's to release."""
    before = _world_state(world_a)
    _error(APIClient().post(release_url(str(world_a.hold.pk)), {}, format="json"), 404, "seat_hold_not_found")
    staff_hold = seat_hold_create(
        event_id=world_a.event.pk,
        seat_ids=world_a.hall.seats("A", [9, 10]),
        expires_at=timezone.now() + timedelta(minutes=10),
        reference="phone sale 12",
    )
    _error(APIClient().post(release_url(staff_hold.token), {}, format="json"), 409, "seat_hold_in_use")
    staff_hold.refresh_from_db()
    assert staff_hold.status == SeatHoldStatus.ACTIVE
    assert _world_state(world_a)["orders"] == before["orders"]


# --- the checkout adopts the hold --------------------------------------------------------------


def test_the_checkout_adopts_the_hold_no_second_hold(world_a: World) -> None:
    client = APIClient()
    held = client.post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    seat_ids = [s["id"] for s in held["seats"]]
    holds_before = SeatHold.objects.count()

    response = client.post(CHECKOUT, _checkout_body(world_a, list(reversed(seat_ids)), held["token"]), format="json")

    assert response.status_code == 201, response.json()
    started = response.json()
    order = Order.objects.get(code=started["order_code"])
    assert sorted(order.lines.values_list("seat_id", flat=True)) == seat_ids
    assert SeatHold.objects.count() == holds_before  # the same hold, adopted
    hold = SeatHold.objects.get(token=held["token"])
    assert hold.reference == order.code and hold.status == SeatHoldStatus.ACTIVE
    assert hold.expires_at == order.expires_at
    assert set(Seat.objects.filter(pk__in=seat_ids).values_list("status", "hold_id")) == {(SeatStatus.HELD, hold.pk)}

    # The order's hold is no longer the token's to release.
    _error(client.post(release_url(held["token"]), {}, format="json"), 409, "seat_hold_in_use")
    # Nor can a second checkout take it (the form sent twice).
    again = client.post(CHECKOUT, _checkout_body(world_a, seat_ids, held["token"]), format="json")
    assert _error(again, 409, "seat_hold_in_use")["detail"]["order"] == order.code

    pay(CheckoutStarted(started["order_code"], started["order_id"], started["payment_url"], None, 0, "EUR", 0))
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    hold.refresh_from_db()
    assert hold.status == SeatHoldStatus.CONVERTED
    assert set(Seat.objects.filter(pk__in=seat_ids).values_list("status", "hold_id")) == {(SeatStatus.SOLD, hold.pk)}
    assert sorted(order.tickets.values_list("seat_id", flat=True)) == seat_ids
    _error(client.post(release_url(held["token"]), {}, format="json"), 409, "seat_hold_in_use")


def test_an_expired_hold_at_checkout_is_410_and_starts_nothing(world_a: World) -> None:
    held = APIClient().post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    seat_ids = [s["id"] for s in held["seats"]]
    SeatHold.objects.filter(token=held["token"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = _world_state(world_a)

    response = APIClient().post(CHECKOUT, _checkout_body(world_a, seat_ids, held["token"]), format="json")

    body = _error(response, 410, "seat_hold_expired")
    assert body["message"] and body["detail"]["status"] == "active"
    assert _world_state(world_a) == before


def test_a_hold_lapsing_inside_the_run_is_the_same_410_and_undone(
    world_a: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's adoption re-checks under the seats' locks: a hold that lapsed
    after the view's read fails the run with the domain's error, in the API's
    format, and leaves no order holding anything."""
    held = APIClient().post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    seat_ids = [s["id"] for s in held["seats"]]
    SeatHold.objects.filter(token=held["token"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr("ticketing.api.views.checkouts.seat_hold_adoptable_check", lambda **kwargs: None)

    response = APIClient().post(CHECKOUT, _checkout_body(world_a, seat_ids, held["token"]), format="json")

    _error(response, 410, "seat_hold_expired")
    assert (
        not Order.objects.filter(event=world_a.event, status=OrderStatus.PENDING)
        .exclude(pk=world_a.pending.pk)
        .exists()
    )
    hold = SeatHold.objects.get(token=held["token"])
    assert hold.reference == ""  # not adopted


def test_checkout_hold_errors(world_a: World, world_b: World) -> None:
    client = APIClient()
    held = client.post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
    seat_ids = [s["id"] for s in held["seats"]]
    other = world_a.hall.seats("A", [1])
    before = _world_state(world_a)

    mismatch = _error(
        client.post(CHECKOUT, _checkout_body(world_a, seat_ids[:1], held["token"]), format="json"),
        409,
        "seat_hold_mismatch",
    )
    assert mismatch["detail"] == {"held": seat_ids, "requested": seat_ids[:1]}
    _error(
        client.post(CHECKOUT, _checkout_body(world_a, [*seat_ids, *other], held["token"]), format="json"),
        409,
        "seat_hold_mismatch",
    )
    # Unknown tokens, and holds of another event, are not found.
    unknown = _checkout_body(world_a, seat_ids, "A" * 24)
    _error(client.post(CHECKOUT, unknown, format="json"), 404, "seat_hold_not_found")
    _error(
        client.post(CHECKOUT, _checkout_body(world_a, seat_ids, world_b.hold.token), format="json"),
        404,
        "seat_hold_not_found",
    )
    # Malformed tokens, and a token without the seats, are invalid requests.
    for token in ("", "not a token", "a" * 65, "x\x00y"):
        response = client.post(CHECKOUT, _checkout_body(world_a, seat_ids, token), format="json")
        assert "seat_hold_token" in _error(response, 400, "invalid")["detail"]
    no_seats = {
        **_checkout_body(world_a, [], held["token"]),
        "tickets": [{"ticket_type": world_a.ticket_type.pk, "quantity": 1}],
    }
    assert "seats" in _error(client.post(CHECKOUT, no_seats, format="json"), 400, "invalid")["detail"]
    # A released hold is gone for good.
    client.post(release_url(held["token"]), {}, format="json")
    after_release = _world_state(world_a)
    _error(
        client.post(CHECKOUT, _checkout_body(world_a, seat_ids, held["token"]), format="json"), 410, "seat_hold_expired"
    )
    assert _world_state(world_a) == after_release
    assert before["orders"] == after_release["orders"] and before["runs"] == after_release["runs"]


def test_a_checkout_without_a_token_still_holds_the_seats_itself(world_a: World) -> None:
    seats = world_a.hall.seats("A", [7, 8])
    response = APIClient().post(CHECKOUT, _checkout_body(world_a, seats), format="json")
    assert response.status_code == 201, response.json()
    hold = SeatHold.objects.get(reference=response.json()["order_code"])
    assert sorted(hold.seat_ids) == sorted(seats)


# --- races on PostgreSQL -------------------------------------------------------------------


def _post_best(event_id: int, category_id: int, quantity: int, ip: str) -> tuple[int, dict[str, Any]]:
    response = APIClient(REMOTE_ADDR=ip).post(
        holds_url(event_id), {"category": category_id, "quantity": quantity}, format="json"
    )
    return response.status_code, response.json()


def test_two_buyers_racing_for_the_best_seats_get_different_seats(world_a: World, require_postgres: None) -> None:
    event_id, category_id = world_a.event.pk, world_a.hall.categories["std"].pk
    for round_no in range(4):  # 16 of the 18 free seats
        report = race(lambda i, r=round_no: _post_best(event_id, category_id, 2, f"10.1.{r}.{i + 1}"), threads=2)
        assert report.unexpected == [] and report.deadlocks == 0
        answers = [value for kind, value in report.outcomes]
        assert [status for status, _ in answers] == [201, 201], answers
        first, second = ({s["id"] for s in body["seats"]} for _, body in answers)
        assert len(first) == len(second) == 2 and not first & second
    holds = list(SeatHold.objects.filter(event=world_a.event).exclude(pk=world_a.hold.pk))
    assert len(holds) == 8
    assert_holds_disjoint_and_owned(holds)


def test_many_buyers_racing_for_best_available_never_share_a_seat(world_a: World, require_postgres: None) -> None:
    """18 buyers want 2 seats each; 18 of the hall's 20 seats are free (the
    world holds B1-B2). A buyer who lost the race (409 no_seats_available,
    reason lost_race) holds again, like the seat-rush buyers: in the end every
    buyer holds a pair of its own and no seat is held twice."""
    event_id, category_id = world_a.event.pk, world_a.hall.categories["std"].pk
    buyers = 9
    got: dict[int, list[int]] = {}
    answers: list[tuple[int, str]] = []

    def buyer(i: int) -> None:
        for _attempt in range(20):
            status, body = _post_best(event_id, category_id, 2, f"10.2.0.{i + 1}")
            answers.append((status, body.get("code", "")))
            if status == 201:
                got[i] = [s["id"] for s in body["seats"]]
                return
            assert status in (409, 429), body
            assert status == 429 or body["detail"].get("reason") == "lost_race", body

    report = race(buyer, threads=buyers)

    assert report.unexpected == [] and report.deadlocks == 0
    assert all(status < 500 for status, _ in answers)
    assert len(got) == buyers
    seats = [seat for pair in got.values() for seat in pair]
    assert len(seats) == len(set(seats)) == 2 * buyers
    holds = list(SeatHold.objects.filter(event=world_a.event).exclude(pk=world_a.hold.pk))
    assert_holds_disjoint_and_owned(holds)
    assert Seat.objects.filter(event=world_a.event, status=SeatStatus.HELD).count() == 2 * buyers + 2


def test_release_racing_the_checkout_that_adopts_the_hold(world_a: World, require_postgres: None) -> None:
    """The buyer's own release and checkout at once: either the order has the
    seats (and the release is refused) or the hold is released (and the
    checkout refused); never an order whose seats were given back."""
    for round_no in range(4):
        held = APIClient().post(holds_url(world_a.event.pk), _best(world_a), format="json").json()
        seat_ids = [s["id"] for s in held["seats"]]

        def work(
            i: int, held: dict[str, Any] = held, seat_ids: list[int] = seat_ids, round_no: int = round_no
        ) -> tuple[int, str]:
            client = APIClient(REMOTE_ADDR=f"10.3.{round_no}.{i + 1}")
            if i == 0:
                response = client.post(release_url(held["token"]), {}, format="json")
            else:
                response = client.post(CHECKOUT, _checkout_body(world_a, seat_ids, held["token"]), format="json")
            return response.status_code, response.json().get("code", "")

        report = race(work, threads=2)
        assert report.unexpected == [] and report.deadlocks == 0
        (release_status, release_code), (checkout_status, checkout_code) = (v for _, v in report.outcomes)
        hold = SeatHold.objects.get(token=held["token"])
        if checkout_status == 201:
            assert (release_status, release_code) == (409, "seat_hold_in_use")
            assert hold.status == SeatHoldStatus.ACTIVE and hold.reference
            assert _statuses(seat_ids) == {SeatStatus.HELD}
        else:
            assert release_status == 200 and hold.status == SeatHoldStatus.RELEASED
            assert (checkout_status, checkout_code) == (410, "seat_hold_expired")
            assert _statuses(seat_ids) == {SeatStatus.FREE}
