"""Idempotency-Key on writes, as Stripe defines it."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tests.api.conftest import client_for, token_for
from tests.factories import OrganizationFactory
from ticketing.api import idempotency
from ticketing.models import Event, IdempotencyRecord
from ticketing.tasks import purge_idempotency_keys


def _event_body(slug: str = "summer", name: str = "Summer") -> dict[str, Any]:
    start = timezone.now() + timedelta(days=10)
    return {
        "name": name,
        "slug": slug,
        "venue_name": "Park",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=3)).isoformat(),
    }


@pytest.fixture
def owner_client(db):
    organization = OrganizationFactory()
    return client_for(token_for(organization, "owner"))


def test_same_key_same_body_replays_the_stored_response(owner_client):
    body = _event_body()
    first = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Event.objects.count() == 1


def test_errors_are_replayed_too(owner_client):
    body = {**_event_body(), "timezone": "Mars/Olympus"}
    first = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-err")
    second = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-err")
    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"


def test_same_key_different_body_is_422(owner_client):
    owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = owner_client.post(
        "/api/v1/events/", _event_body(slug="other", name="Other"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Event.objects.count() == 1


def test_same_key_on_another_endpoint_is_422(owner_client):
    created = owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    event_id = created.json()["id"]
    response = owner_client.patch(
        f"/api/v1/events/{event_id}/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert response.status_code == 422


def test_keys_are_private_to_their_owner(db):
    organization = OrganizationFactory()
    one, two = client_for(token_for(organization, "owner")), client_for(token_for(organization, "owner"))
    assert one.post("/api/v1/events/", _event_body("a"), format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    response = two.post("/api/v1/events/", _event_body("b"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert Event.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_malformed_keys_are_400(owner_client, key):
    response = owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Event.objects.exists()


def test_keys_expire_after_24_hours(owner_client):
    body = _event_body()
    owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    assert purge_idempotency_keys() == 1
    assert not IdempotencyRecord.objects.exists()
    # The key is free again: the request runs (and fails on the slug taken by the first run).
    response = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-old")
    assert response.status_code == 400
    assert not response.has_header("Idempotent-Replayed")


def test_an_expired_key_not_yet_purged_is_not_replayed(owner_client):
    owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-stale")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = owner_client.post("/api/v1/events/", _event_body("fresh"), format="json", HTTP_IDEMPOTENCY_KEY="k-stale")
    assert response.status_code == 201
    assert Event.objects.count() == 2


def test_retryable_answers_are_not_stored(owner_client, monkeypatch):
    from ticketing.api.views import events as views
    from ticketing.exceptions import Busy

    def busy(**kwargs: Any) -> None:
        raise Busy()

    monkeypatch.setattr(views, "event_create", busy)
    assert (
        owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-b").status_code
        == 429
    )
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert (
        owner_client.post("/api/v1/events/", _event_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-b").status_code
        == 201
    )


def test_a_claim_abandoned_by_a_dead_request_is_taken_over(owner_client):
    body = _event_body()
    response = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-dead")
    record = IdempotencyRecord.objects.get(key="k-dead")
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        completed_at=None, response_status=None, created_at=timezone.now() - idempotency.IN_FLIGHT_TIMEOUT
    )
    # As if that request had died in flight two minutes ago, before its write.
    Event.objects.filter(pk=response.json()["id"]).delete()
    retry = owner_client.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-dead")
    assert retry.status_code == 201
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key(monkeypatch):
    """The second arrives while the first is still in its view: 409, and the
    event is created once."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL")
    organization = OrganizationFactory()
    raw = token_for(organization, "owner")
    from ticketing.api.views import events as views

    entered, release = threading.Event(), threading.Event()
    real_create = views.event_create

    def slow_create(**kwargs: Any) -> Event:
        entered.set()
        assert release.wait(10)
        return real_create(**kwargs)

    monkeypatch.setattr(views, "event_create", slow_create)
    body = _event_body()
    results: dict[str, Any] = {}

    def first() -> None:
        try:
            results["first"] = client_for(raw).post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="race")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert entered.wait(10)

        def second() -> None:
            try:
                results["second"] = client_for(raw).post(
                    "/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="race"
                )
            finally:
                connection.close()

        other = threading.Thread(target=second)
        other.start()
        other.join(10)
    finally:
        release.set()
        thread.join(10)

    statuses = sorted([results["first"].status_code, results["second"].status_code])
    assert statuses == [201, 409]
    assert results["second"].json()["code"] == "idempotency_key_in_use"
    assert Event.objects.filter(organization=organization).count() == 1
    # Once the first finished, a retry replays it.
    replay = client_for(raw).post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="race")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"


def _claim(key: str = "k-claim") -> idempotency.Claim:
    return idempotency.idempotency_claim(owner="ip:10.0.0.1", key=key, method="POST", path="/x/", request_hash="h")


@pytest.mark.django_db(transaction=True)
def test_a_claim_outside_a_transaction_is_one_insert(django_assert_num_queries):
    # The API's requests run in autocommit: no BEGIN/COMMIT around the claim.
    with django_assert_num_queries(1):
        assert not _claim().replay
    # The duplicate INSERT fails by itself and the claim in flight is found.
    with pytest.raises(idempotency.IdempotencyKeyInUse):
        _claim()
    assert IdempotencyRecord.objects.filter(key="k-claim").count() == 1


def test_a_duplicate_claim_inside_a_transaction_leaves_it_usable(db):
    # (pytest-django runs this test inside a transaction: the claim takes a savepoint.)
    assert not _claim().replay
    with pytest.raises(idempotency.IdempotencyKeyInUse):
        _claim()
    assert IdempotencyRecord.objects.filter(key="k-claim").count() == 1
