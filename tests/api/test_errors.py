"""One error format for every 4xx: {"code", "message", "detail"}."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api.conftest import World, client_for, token_for
from ticketing.models import Event


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == code
    assert body["message"]
    return body


@pytest.fixture
def owner(world_a: World):
    return client_for(token_for(world_a.organization, "owner"))


def test_400_validation_names_the_field(owner, world_a: World):
    start = timezone.now() + timedelta(days=3)
    body = _assert_error(
        owner.post(
            "/api/v1/events/",
            {
                "name": "X",
                "slug": "not a slug!",
                "venue_name": "V",
                "starts_at": start.isoformat(),
                "ends_at": (start - timedelta(hours=1)).isoformat(),
                "currency": "euro",
            },
            format="json",
        ),
        400,
        "invalid",
    )
    assert {"slug", "currency"} <= set(body["detail"])


def test_400_domain_validation_names_the_field(owner, world_a: World):
    body = _assert_error(
        owner.patch(
            f"/api/v1/ticket-types/{world_a.ticket_type.pk}/", {"min_per_order": 5, "max_per_order": 2}, format="json"
        ),
        400,
        "invalid",
    )
    assert "max_per_order" in body["detail"]


def test_400_malformed_json(owner):
    _assert_error(owner.post("/api/v1/events/", "{nope", content_type="application/json"), 400, "parse_error")


def test_415_form_bodies(owner):
    _assert_error(owner.post("/api/v1/events/", {"name": "x"}), 415, "unsupported_media_type")


def test_401(world_a: World):
    _assert_error(client_for(None).get("/api/v1/orders/"), 401, "not_authenticated")


def test_403(world_a: World):
    _assert_error(
        client_for(token_for(world_a.organization, "scanner")).get("/api/v1/orders/"), 403, "permission_denied"
    )


@pytest.mark.parametrize("path", ["/api/v1/orders/999999/", "/api/v1/nope/", "/api/v1/orders/99999999999999999999999/"])
def test_404(owner, path):
    _assert_error(owner.get(path), 404, "not_found")


def test_405(owner, world_a: World):
    _assert_error(owner.delete(f"/api/v1/orders/{world_a.order.pk}/"), 405, "method_not_allowed")


def test_409_domain_state(owner, world_a: World):
    owner.post(f"/api/v1/events/{world_a.event.pk}/cancel/", {}, format="json")
    body = _assert_error(
        owner.post(f"/api/v1/events/{world_a.event.pk}/open-sales/", {}, format="json"), 409, "invalid_state"
    )
    assert body["detail"]["status"] == "cancelled"


def test_409_seat_taken(owner, world_a: World):
    seat = world_a.hold.seat_ids[0]
    body = _assert_error(
        owner.post(f"/api/v1/events/{world_a.event.pk}/seat-holds/", {"seat_ids": [seat]}, format="json"),
        409,
        "seat_unavailable",
    )
    assert body["detail"]["seat_ids"] == [seat]


def test_422_idempotency_key_reused(owner, world_a: World):
    url = f"/api/v1/events/{world_a.event.pk}/"
    owner.patch(url, {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    _assert_error(
        owner.patch(url, {"name": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="k"), 422, "idempotency_key_reused"
    )
    assert Event.objects.get(pk=world_a.event.pk).name == "A"


def test_429_public_endpoints_are_throttled_per_ip(settings, world_a: World):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "3/min", "client": "1000/min"},
    }
    client = client_for(None)
    for _ in range(3):
        assert client.get("/api/v1/public/events/").status_code == 200
    response = client.get("/api/v1/public/events/")
    _assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    # Another address has its own budget; a token is not throttled as anonymous.
    assert client.get("/api/v1/public/events/", REMOTE_ADDR="10.0.0.9").status_code == 200
    assert client_for(token_for(world_a.organization, "owner")).get("/api/v1/public/events/").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "?created_after=9999-12-31T23:59:59-14:00",
        "?created_after=0001-01-01T00:00:00%2B14:00",
        "?event=-1",
        "?event=99999999999999999999999",
        "?email=%00",
        "?limit=abc&offset=-5",
        "?ordering=password",
    ],
)
def test_odd_filters_are_4xx_never_5xx(owner, query):
    response = owner.get(f"/api/v1/orders/{query}")
    assert 200 <= response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "detail"}
