from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import EventFactory, TicketTypeFactory


@pytest.mark.django_db
def test_index_lists_on_sale_events_with_their_price(client, organization):
    on_sale = EventFactory(organization=organization, name="Jazz night")
    TicketTypeFactory(event=on_sale, price_cents=2550)
    EventFactory(organization=organization, name="Secret draft", status="draft")

    page = client.get(reverse("ticketing:event-index")).content.decode()

    assert "Jazz night" in page
    assert "EUR 25.50" in page
    assert "Secret draft" not in page


@pytest.mark.django_db
def test_healthz_reports_every_part(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["database"] == "ok"
    assert set(response.json()["checks"]) == {"database", "cache", "broker"}


@pytest.mark.django_db
def test_healthz_is_503_naming_the_broker_when_it_is_down(client):
    from config.celery import app

    # A real connection attempt to a port nothing listens on.
    previous = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:1/0", False
    try:
        from django.test import override_settings

        with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
            response = client.get("/healthz")
    finally:
        app.conf.broker_url, app.conf.task_always_eager = previous
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"].startswith("down")
    assert body["checks"]["database"] == "ok"
