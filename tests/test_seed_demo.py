from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from seating.models import PriceCategory, Seat, Section
from ticketing.models import Event, Organization, TicketType


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_the_admin_shows_it(client):
    call_command("seed_demo", stdout=StringIO())
    output = StringIO()
    call_command("seed_demo", stdout=output)
    assert "Login: demo / demo-tickets-2026" in output.getvalue()

    assert Organization.objects.count() == 1
    assert Event.objects.filter(status="on_sale").count() == 2
    ga = Event.objects.get(slug="summer-open-air")
    assert ga.ticket_types.count() == 2
    seated = Event.objects.get(slug="symphony-night")
    assert Seat.objects.filter(event=seated).count() >= 500
    assert Section.objects.filter(plan__event=seated).count() == 3
    assert PriceCategory.objects.filter(plan__event=seated).count() == 2
    for tt in TicketType.objects.filter(event=seated):
        assert tt.capacity == Seat.objects.filter(category__ticket_type=tt).count()

    assert client.login(username="demo", password="demo-tickets-2026")
    page = client.get(reverse("admin:ticketing_event_changelist")).content.decode()
    assert "Summer Open Air" in page and "Symphony Night" in page
    assert client.get(reverse("admin:index")).status_code == 200
